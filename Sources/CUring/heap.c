// malloc's tunables, which glibc declares only in <malloc.h> (not in Swift's Glibc module).
#include <malloc.h>
#include "CUring.h"

void mp_keep_freed_memory(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest: big blocks come from the heap
    mallopt(M_TRIM_THRESHOLD, 1 << 30);   // and what is freed there stays for the next one
}
