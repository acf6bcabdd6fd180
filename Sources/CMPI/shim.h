// Open MPI for Swift. MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM and MPI_IN_PLACE are macros over global structs or
// casts that Swift cannot import, so they are wrapped in inline functions here.
#include <mpi.h>

static inline MPI_Comm ie_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype ie_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype ie_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Op ie_mpi_sum(void) { return MPI_SUM; }
static inline void *ie_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int ie_mpi_success(void) { return MPI_SUCCESS; }
static inline int ie_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
