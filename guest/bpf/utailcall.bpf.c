/* uprobe.multi + uprobe in one tail-call map (tailcall.h): Tetragon v1.5.0's multi-uprobe sensor. */
#include "tailcall.h"
#include "libc-path.h"
MIXED_TAIL_CALLS("uprobe.multi/" LIBC_PATH ":malloc", "uprobe")
