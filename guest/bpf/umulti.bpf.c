/* uprobe.multi attach (6.6+): Tetragon attaches uprobes through it where the kernel has
 * it. On libc's malloc: any dynamic program the guest step runs makes it fire. */
#include "hits.h"
#include "libc-path.h"
SEC("uprobe.multi/" LIBC_PATH ":malloc")
int umulti_malloc(void *ctx) { bump(); return 0; }
