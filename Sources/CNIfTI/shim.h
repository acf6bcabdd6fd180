// znzlib.h lays out znzptr differently unless HAVE_ZLIB is defined; libznz was built with it.
#ifndef HAVE_ZLIB
#define HAVE_ZLIB 1
#endif
#include <nifti/nifti1_io.h>
