// selu_ext: the CUDA kernels of selu_kernels.cu built for the host (emulation.h), as a
// plain shared library with a C interface that tests/test_cuda_emulation.py loads with
// ctypes and calls on CPU tensors' buffers. Not part of the extension.
//
// A shared library rather than a torch extension: it compiles in seconds without
// torch's headers (the kernels include none), builds the same under ASan + UBSan, and
// the test can compare its output against the CPU operators in the same process.
#include "emulation.h"

#include "selu_kernels.cu"

// No streams on the host.
cudaStream_t selu_ext::cuda::current_stream() { return nullptr; }

namespace {

using selu_ext::DropoutLaunch;
using selu_ext::DType;

// rng_ptr non-null: the kernel reads (seed, offset) from it, as from a device tensor.
DropoutLaunch dropout_args(double p, double kept_bound, double kept_above, uint64_t seed,
                           uint64_t offset, const int64_t* rng_ptr) {
  DropoutLaunch d{p, kept_bound, kept_above, {}, 0};
  d.rng.seed = seed;
  d.rng.offset = offset;
  d.rng.device_ptr = rng_ptr;
  return d;
}

}  // namespace

// The launchers of dtype d.
const selu_ext::Loops& loops(int d) { return selu_ext::cuda::loops(DType(d)); }

#define SELU_EXT_DROPOUT_ARGS                                                          \
  double p, double kept_bound, double kept_above, uint64_t seed, uint64_t offset, \
      const int64_t* rng_ptr
#define SELU_EXT_DROPOUT_PASS dropout_args(p, kept_bound, kept_above, seed, offset, rng_ptr)

extern "C" {

void emu_selu(int d, const void* x, void* y, int64_t n) {
  loops(d).selu_loop(x, y, n);
}

void emu_selu_backward(int d, const void* grad, const void* y, void* grad_x, int64_t n,
                       int is_result) {
  loops(d).selu_backward_loop(grad, y, grad_x, n, is_result != 0);
}

void emu_alpha_dropout(int d, const void* x, void* z, int64_t n, SELU_EXT_DROPOUT_ARGS) {
  loops(d).alpha_dropout_loop(x, z, n, SELU_EXT_DROPOUT_PASS);
}

void emu_alpha_dropout_backward(int d, const void* grad, void* grad_x, int64_t n,
                                SELU_EXT_DROPOUT_ARGS) {
  loops(d).alpha_dropout_backward_loop(grad, grad_x, n, SELU_EXT_DROPOUT_PASS);
}

void emu_selu_alpha_dropout(int d, const void* x, void* z, int64_t n, SELU_EXT_DROPOUT_ARGS) {
  loops(d).selu_alpha_dropout_loop(x, z, n, SELU_EXT_DROPOUT_PASS);
}

void emu_selu_alpha_dropout_backward(int d, const void* grad, const void* z, void* grad_x,
                                     int64_t n, SELU_EXT_DROPOUT_ARGS) {
  loops(d).selu_alpha_dropout_backward_loop(grad, z, grad_x, n, SELU_EXT_DROPOUT_PASS);
}

void emu_dropout_keep_mask(bool* out, int64_t n, double p, uint64_t seed, uint64_t offset,
                           const int64_t* rng_ptr) {
  loops(0).dropout_keep_mask_loop(out, n, dropout_args(p, 0.0, 0.0, seed, offset, rng_ptr));
}

// captured: the state of a CUDA graph capture, whose seed and offset the kernel reads
// through pointers (plus offset_intragraph); else the values themselves.
void emu_write_rng_state(int captured, uint64_t seed, uint64_t offset, int64_t* seed_ptr,
                         int64_t* offset_ptr, uint64_t offset_intragraph, int64_t* out) {
  at::PhiloxCudaState state =
      captured ? at::PhiloxCudaState(seed_ptr, offset_ptr, offset_intragraph)
               : at::PhiloxCudaState(seed, offset);
  selu_ext::cuda::launch_write_rng_state(state, out, nullptr);
}

int64_t emu_invalid_launches() { return selu_ext::cuda::emulation::invalid_launches; }

}  // extern "C"
