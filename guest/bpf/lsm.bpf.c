/* BPF LSM program: attaches whenever the kernel has BPF_LSM and trampolines, but only runs
 * when "bpf" is in the active LSM list. Returns 0: allow. */
#include "hits.h"
SEC("lsm/file_open")
int lsm_file_open(void *ctx) { bump(); return 0; }
