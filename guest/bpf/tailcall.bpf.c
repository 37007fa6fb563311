/* kprobe.multi + kprobe in one tail-call map (tailcall.h): Tetragon v1.5.0's multi-kprobe sensor. */
#include "tailcall.h"
MIXED_TAIL_CALLS("kprobe.multi/security_file_open", "kprobe")
