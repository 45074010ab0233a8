"""The one log masker: one token per field whatever its length or spelling, host names and id paths
whole, lists of a field as one token, the word beside a field kept, status codes kept, vectorised (RE2)
and per-line (Python re) masking agree, and Loghub's BGL lines stay one template."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from opsloop.clustering.drain import LogTemplateMiners
from opsloop.clustering.masking import mask_messages, mask_one

BGL = Path("/work/shared/datasets/loghub_2k/BGL/BGL_2k.log_structured.csv")


def both(messages: list[str]) -> list[str]:
    """Masked by both engines; they must agree."""
    out = mask_messages(pd.Series(messages)).tolist()
    assert out == [mask_one(m) for m in messages]
    return out


@pytest.mark.parametrize("short, long", [("1234", "123456789012"), ("0x1234", "0x0000abcd1234"),
                                         ("1234", "0000abcd1234"), ("7", "12345678")])
def test_a_field_of_4_and_of_12_digits_masks_to_one_token(short, long):
    a, b = both([f"{short} double-hummer alignment exceptions", f"{long} double-hummer alignment exceptions"])
    assert a == b == "<NUM> double-hummer alignment exceptions"


def test_words_of_hex_letters_are_kept():
    assert both(["added a face to cafe"]) == ["added a face to cafe"]


def test_host_names_are_masked_whole():
    out = both(["connect to host123.example.org:8080 refused",
                "connect to db-2.internal refused",
                "MININT-FNANLI5.fareast.corp.microsoft.com/10.86.169.121:62256 closed",
                "reached api.example.com."])
    assert out == ["connect to <HOST> refused", "connect to <HOST> refused", "<HOST>/<IP> closed", "reached <HOST>."]


def test_packages_and_file_names_are_not_hosts():
    out = both(["at org.apache.hadoop.io.compress.CodecPool.getDecompressor", "loaded drain.py"])
    assert out == ["at org.apache.hadoop.io.compress.CodecPool.getDecompressor", "loaded drain.py"]


def test_status_reason_phrases_kept_and_prefixed_ids_masked():
    out = both(["webhook delivery failed: 403 Forbidden (signature) merchant=m_019 order_id=ord_8f3a21bc11aa",
                "rejected: 401 Unauthorized key_id=pk_live_...a1b2 stage=dual_run took 35 ms",
                "Receiving block blk_-1608999687919862906 then blk_38865049064139660"])
    assert out == ["webhook delivery failed: 403 Forbidden (signature) merchant=<ID> order_id=<ID>",
                   "rejected: 401 Unauthorized key_id=<ID> stage=dual_run took <NUM> ms",
                   "Receiving block <ID> then <ID>"]


def test_short_distinct_events_stay_distinct():
    out = both(["disk full", "disk fail", "link up", "link down", "torus receiver x+ input", "torus receiver y+ input"])
    assert len(set(out)) == 6


def test_paths_with_ids_are_masked_whole_and_endpoints_without_ids_are_kept():
    out = both(['10.11.10.1 "GET /v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail HTTP/1.1" status: 200',
                '10.11.10.1 "GET /openstack/2013-10-17/meta_data.json HTTP/1.1" status: 200',
                "allocateBlock: /user/root/rand/_temporary/_task_200811092030_0001_m_001866_0/part-01866. blk_77",
                "GET /v1/health ok", "GET /latest/meta-data/ ok"])
    assert out == ['<IP> "GET <PATH> HTTP/<NUM>" status: <NUM>', '<IP> "GET <PATH> HTTP/<NUM>" status: <NUM>',
                   "allocateBlock: <PATH> <ID>", "GET /<VERSION>/health ok", "GET /latest/meta-data/ ok"]


def test_one_token_per_field_whatever_its_spelling():
    out = both(["from 10.0.0.1,10.0.0.2 to fe80::1c4e:2a7d and fe80:0:0:0:1c4e:2a7d:fecd:a1b2",
                "BSSID changed to 0:1a:2b:3c:bc:4d", "BSSID changed to 00:1a:2b:3c:bc:4d",
                "delete blk_1 blk_-2 blk_3", "delete blk_4",
                "sent delivery_id=dlv_bebedccfffaa key_id=pk_live_...ceba",
                "sent delivery_id=dlv_00aa11ff22bb key_id=pk_live_...a1b2",
                "waited 30s", "waited 512ms", "waited 1.5",
                "at Fri Jul 1 12:34:56 PDT 2005", "at 2017-05-16 00:00:00.008", "at 12:34:56"])
    assert out[0] == "from <IP> to <IP> and <IP>"
    assert out[1] == out[2] == "BSSID changed to <MAC>"
    assert out[3] == out[4] == "delete <ID>"
    assert out[5] == out[6] == "sent delivery_id=<ID> key_id=<ID>"
    assert out[7] == out[8] == out[9] == "waited <NUM>"
    assert out[10] == out[11] == out[12] == "at <TIME>"


def test_the_word_beside_a_field_is_kept():
    out = both(["Lustre mount FAILED : bglio559 : point", "Lustre mount FAILED : bglio46 : point",
                "en0: channel changed", "wl0: channel changed", "data store interrupt caused by dcbf0"])
    assert out[0] == out[1] == "Lustre mount FAILED : bglio<NUM> : point"
    assert out[2:] == ["en<NUM>: channel changed", "wl<NUM>: channel changed", "data store interrupt caused by <NUM>"]


def test_missing_messages_and_whitespace():
    out = mask_messages(pd.Series(["  a   b\t7 ", None]))
    assert out.tolist() == ["a b <NUM>", ""]
    assert mask_one(None) == ""


@pytest.mark.skipif(not BGL.exists(), reason=f"Loghub BGL sample not found at {BGL}")
def test_bgl_counts_of_any_length_stay_one_template():
    frame = pd.read_csv(BGL, dtype=str, keep_default_na=False)
    lines = frame[frame["EventId"].isin(["E3", "E4"])]  # "<*> double-hummer / floating point alignment exceptions"
    lengths = lines["Content"].str.split(" ").str[0].str.len()
    assert lengths.min() <= 4 and lengths.max() >= 8, "the sample should hold short and long counts"
    mined = LogTemplateMiners().mine(pd.DataFrame({"service": "BGL", "message": lines["Content"]}))
    groups = pd.crosstab(lines["EventId"].to_numpy(), mined.template_id.to_numpy())
    assert groups.shape == (2, 2) and ((groups > 0).sum(axis=1) == 1).all()
    assert sorted(mined.templates.values()) == ["<NUM> double-hummer alignment exceptions",
                                                "<NUM> floating point alignment exceptions"]
