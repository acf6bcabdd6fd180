#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* PNG decoding with libpng's full API. libpng reports errors by longjmp, which must never cross Swift frames:
   the setjmp, the read callback and the error handler all live here in C, and Swift sees a return code. */

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
    char message[200];
} ie_png_reader;

static void ie_png_read_bytes(png_structp png, png_bytep out, png_size_t length) {
    ie_png_reader *reader = (ie_png_reader *)png_get_io_ptr(png);
    if (length > reader->size - reader->offset) png_error(png, "the file ends early (truncated)");
    memcpy(out, reader->data + reader->offset, length);
    reader->offset += length;
}

static void ie_png_on_error(png_structp png, png_const_charp message) {
    ie_png_reader *reader = (ie_png_reader *)png_get_error_ptr(png);
    if (reader) {
        strncpy(reader->message, message, sizeof(reader->message) - 1);
        reader->message[sizeof(reader->message) - 1] = 0;
    }
    png_longjmp(png, 1);
}

static void ie_png_on_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

/* Decodes the PNG in reader->data to one unsigned 16-bit sample per channel, with the values Pillow's
   numpy.asarray gives: 8-bit grey/RGB/RGBA/grey+alpha as stored; 16-bit grey as stored; 16-bit colour reduced to
   its high byte; 1-bit grey as 0/1; 2- and 4-bit grey scaled to 0..255; palette images as their indices.
   Returns NULL with reader->message set on failure (also when width*height exceeds max_pixels). */
static inline unsigned short *ie_png_decode(ie_png_reader *reader, unsigned long max_pixels,
                                            unsigned *width, unsigned *height, int *channels, int *bit_depth) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, reader, ie_png_on_error, ie_png_on_warning);
    if (!png) { strcpy(reader->message, "libpng could not start"); return NULL; }
    png_infop info = png_create_info_struct(png);
    unsigned short *volatile samples = NULL;
    png_bytep volatile pixels = NULL;
    png_bytepp volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        free(samples); free(pixels); free(rows);
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        if (!reader->message[0]) strcpy(reader->message, "libpng could not decode the file");
        return NULL;
    }
    png_set_read_fn(png, reader, ie_png_read_bytes);
    png_set_user_limits(png, 1u << 20, 1u << 20);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), colour = png_get_color_type(png, info);
    if ((unsigned long)w * (unsigned long)h > max_pixels) png_error(png, "the image has more pixels than allowed");
    if (colour == PNG_COLOR_TYPE_PALETTE || (colour == PNG_COLOR_TYPE_GRAY && depth == 1)) png_set_packing(png);
    else if (colour == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && (colour & PNG_COLOR_MASK_COLOR)) png_set_strip_16(png);
    if (depth == 16 && colour == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int n = png_get_channels(png, info), outDepth = png_get_bit_depth(png, info);
    size_t rowBytes = png_get_rowbytes(png, info);
    pixels = (png_bytep)malloc(rowBytes * h);
    rows = (png_bytepp)malloc(sizeof(png_bytep) * h);
    samples = (unsigned short *)malloc(sizeof(unsigned short) * (size_t)w * h * n);
    if (!pixels || !rows || !samples) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + y * rowBytes;
    png_read_image(png, rows);
    size_t count = (size_t)w * h * n;
    for (size_t i = 0; i < count; i++) {
        samples[i] = outDepth == 16 ? (unsigned short)((pixels[2 * i] << 8) | pixels[2 * i + 1]) : pixels[i];
    }
    free(pixels); free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *width = w; *height = h; *channels = n; *bit_depth = outDepth;
    return samples;
}
