/* fuzz_file.h: the readers mmap a path, so a fuzz input is written to a memfd and opened as
 * /proc/self/fd/N. fuzz_file_open returns the fd (close it when done) or -1. */
#ifndef LLT_FUZZ_FILE_H
#define LLT_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static inline int fuzz_file_open(const char *name, const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return -1;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
