#ifndef IE_CDNNL_SHIM_H
#define IE_CDNNL_SHIM_H
#include <dnnl.h>
#include <stdint.h>
#include <string.h>

/* oneDNN in Debian runs its primitives on OpenMP (libgomp): this is how IENet hands it the thread count. */
extern void omp_set_num_threads(int);
extern int omp_get_max_threads(void);

/* Helpers for what Swift cannot spell directly: the fixed-size dims arrays. */

/* A 5-D memory descriptor (a, b, d, h, w) of data type `type` (f32, bf16) with the given layout tag (ncdhw, oidhw
   or any). */
static inline dnnl_status_t ie_dnnl_md5(dnnl_memory_desc_t *md, int64_t a, int64_t b, int64_t d, int64_t h,
                                        int64_t w, dnnl_data_type_t type, dnnl_format_tag_t tag) {
    dnnl_dims_t dims = {a, b, d, h, w};
    return dnnl_memory_desc_init_by_tag(md, 5, dims, type, tag);
}

/* Cubic stride and padding on all three axes; right padding from the output size so that a stride that does not
   divide the extent evenly is described exactly as PyTorch's floor((n + 2p - k) / s) + 1 implies. */
static inline void ie_dnnl_conv_dims(int64_t stride, int64_t padding, int64_t kernel,
                                     const int64_t in[3], const int64_t out[3],
                                     int64_t strides[12], int64_t left[12], int64_t right[12]) {
    memset(strides, 0, 12 * sizeof(int64_t)); memset(left, 0, 12 * sizeof(int64_t)); memset(right, 0, 12 * sizeof(int64_t));
    for (int i = 0; i < 3; i++) {
        strides[i] = stride;
        left[i] = padding;
        right[i] = (out[i] - 1) * stride + kernel - in[i] - padding;
    }
}

static inline dnnl_status_t ie_dnnl_conv_forward_desc(dnnl_convolution_desc_t *desc, const dnnl_memory_desc_t *src,
        const dnnl_memory_desc_t *weights, const dnnl_memory_desc_t *dst,
        int64_t stride, int64_t padding, int64_t kernel, const int64_t in[3], const int64_t out[3]) {
    dnnl_dims_t s, l, r;
    ie_dnnl_conv_dims(stride, padding, kernel, in, out, s, l, r);
    return dnnl_convolution_forward_desc_init(desc, dnnl_forward_training, dnnl_convolution_direct,
                                              src, weights, NULL, dst, s, l, r);
}

static inline dnnl_status_t ie_dnnl_conv_backward_data_desc(dnnl_convolution_desc_t *desc,
        const dnnl_memory_desc_t *diff_src, const dnnl_memory_desc_t *weights, const dnnl_memory_desc_t *diff_dst,
        int64_t stride, int64_t padding, int64_t kernel, const int64_t in[3], const int64_t out[3]) {
    dnnl_dims_t s, l, r;
    ie_dnnl_conv_dims(stride, padding, kernel, in, out, s, l, r);
    return dnnl_convolution_backward_data_desc_init(desc, dnnl_convolution_direct, diff_src, weights, diff_dst, s, l, r);
}

static inline dnnl_status_t ie_dnnl_conv_backward_weights_desc(dnnl_convolution_desc_t *desc,
        const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *diff_weights, const dnnl_memory_desc_t *diff_dst,
        int64_t stride, int64_t padding, int64_t kernel, const int64_t in[3], const int64_t out[3]) {
    dnnl_dims_t s, l, r;
    ie_dnnl_conv_dims(stride, padding, kernel, in, out, s, l, r);
    return dnnl_convolution_backward_weights_desc_init(desc, dnnl_convolution_direct, src, diff_weights, NULL,
                                                       diff_dst, s, l, r);
}

/* A 5-D f32 memory descriptor with explicit strides (elements): a strided view such as one residue class of a
   sub-pixel convolution's target. */
static inline dnnl_status_t ie_dnnl_md5_strided(dnnl_memory_desc_t *md, const int64_t dims[5], const int64_t strides[5]) {
    dnnl_dims_t d = {dims[0], dims[1], dims[2], dims[3], dims[4]};
    dnnl_dims_t s = {strides[0], strides[1], strides[2], strides[3], strides[4]};
    return dnnl_memory_desc_init_by_strides(md, 5, d, dnnl_f32, s);
}

/* A stride-1 forward convolution for inference with per-axis padding (kernel sizes come from the weights). */
static inline dnnl_status_t ie_dnnl_conv_inference_desc(dnnl_convolution_desc_t *desc, const dnnl_memory_desc_t *src,
        const dnnl_memory_desc_t *weights, const dnnl_memory_desc_t *dst, const int64_t left[3], const int64_t right[3]) {
    dnnl_dims_t s = {1, 1, 1}, l = {left[0], left[1], left[2]}, r = {right[0], right[1], right[2]};
    return dnnl_convolution_forward_desc_init(desc, dnnl_forward_inference, dnnl_convolution_direct,
                                              src, weights, NULL, dst, s, l, r);
}

#endif
