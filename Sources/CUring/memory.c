// Memory calls that Swift's Glibc module does not declare: malloc's tunables (<malloc.h>) and
// the system's swap space (<sys/sysinfo.h>).
#include <malloc.h>
#include <sys/sysinfo.h>
#include "CUring.h"

void mp_keep_freed_memory(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest: big blocks come from the heap
    mallopt(M_TRIM_THRESHOLD, 1 << 30);   // and what is freed there stays for the next one
}

long long mp_swap_bytes(void) {
    struct sysinfo info;
    if (sysinfo(&info) != 0) return -1;
    return (long long)info.totalswap * info.mem_unit;
}
