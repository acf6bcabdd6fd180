// znzlib.h lays out znzptr differently unless HAVE_ZLIB is defined; libznz was built with it.
#ifndef HAVE_ZLIB
#define HAVE_ZLIB 1
#endif
#include <nifti/nifti1.h>
#include <nifti/znzlib.h>

// Debian's nifti1_io.h includes <znzlib.h> and <nifti1.h> without their nifti/ folder, which fails inside a
// Clang module (no pkg-config file adds -I/usr/include/nifti). We therefore declare the few libniftiio
// functions we call here, with their exact prototypes from nifti1_io.h; voxel data is read through znzlib.
nifti_1_header *nifti_read_header(const char *hname, int *swapped, int check);
nifti_1_header *nifti_make_new_header(const int arg_dims[], int arg_dtype);
void nifti_set_debug_level(int level);
