/* Where Debian keeps libc on the guest's arch (the image takes it from Debian's libc6). */
#ifndef BPFGATE_LIBC_PATH_H
#define BPFGATE_LIBC_PATH_H
#if defined(__TARGET_ARCH_x86)
#define LIBC_PATH "/lib/x86_64-linux-gnu/libc.so.6"
#else
#define LIBC_PATH "/lib/aarch64-linux-gnu/libc.so.6"
#endif
#endif
