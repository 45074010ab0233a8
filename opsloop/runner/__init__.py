"""Running cycles unattended: the window grid (:mod:`.windows`) and the crash-safe runner (:mod:`.runner`)."""
