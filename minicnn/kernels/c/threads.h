/* OpenMP where the compiler has it; one thread where it does not (the pragmas are then ignored). */
#pragma once

#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_max_threads(void) { return 1; }
#endif
