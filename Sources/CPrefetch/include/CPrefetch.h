#ifndef IE_CPREFETCH_H
#define IE_CPREFETCH_H

// Software prefetch for IENet's direct convolution kernels (IENetKernels). Swift has no prefetch of its own and
// the x86 intrinsic _mm_prefetch is a macro the importer cannot see; a static inline function in a header is
// imported and inlined into the Swift caller, where it becomes a single prefetch instruction.

/// Asks the CPU to bring the cache line holding `address` toward the core (a read, kept in all cache levels).
/// A hint only: it never faults, even for an address outside mapped memory.
static inline __attribute__((always_inline)) void ie_prefetch_read(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
