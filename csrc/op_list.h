// selu_ext: the list of operators, once. Every file that registers or implements
// the operators expands it, so adding one is its schema (ops.cpp), a row here, and
// one function per layer, under the names below.
//
// Names, one per layer (operator alpha_dropout as the example):
//   operator         selu_ext::alpha_dropout         ops.cpp: the schema
//   autograd kernel  autograd_alpha_dropout          autograd.cpp; its graph Node keeps
//                                                    PyTorch's grad_fn names
//                                                    (AlphaDropoutBackward0, ...)
//   host function    host::alpha_dropout<Backend>    host.h: checks, allocation, layout
//   backend loop     Backend::alpha_dropout_loop     cpu/selu_cpu.cpp, cuda/selu_cuda.cpp:
//                                                    one pass over dense buffers
//     CPU            Kernels::alpha_dropout_loop     cpu/kernels.h, one per instruction
//                                                    set (alpha_dropout_loop_t<DType> in
//                                                    cpu/vec_kernels.h, scalar_kernels.h)
//     CUDA           cuda::launch_alpha_dropout      cuda/selu_kernels.cu, over the
//                                                    kernel functor AlphaDropoutKernel
//   element formula  alpha_dropout_elem              selu_math.h
// The in-place operators share their out-of-place twin's loop (selu_ and selu_loop).
// A build without CUDA kernels serves CUDA tensors with cuda/fallback.cpp's
// fallback::<operator>.
//
// SELU_EXT_OPS(X) calls X(name, kind, signature) for every operator with a kernel per
// device (dropout_rng_state, which has no tensor argument to dispatch on, is
// ops.cpp's alone). kind is OUT (differentiable, returns a new tensor), INPLACE
// (differentiable, modifies its first argument) or MASK (dropout_keep_mask: a bool
// tensor from an rng_state, no autograd). signature is the operator's C++ function
// type, as c10::TypedOperatorHandle takes it.
#pragma once

#define SELU_EXT_OPS(X)                                                                       \
  X(selu, OUT, at::Tensor(const at::Tensor&, bool))                                           \
  X(selu_, INPLACE, void(at::Tensor&))                                                        \
  X(selu_backward, OUT, at::Tensor(const at::Tensor&, const at::Tensor&, bool))               \
  X(alpha_dropout, OUT, at::Tensor(const at::Tensor&, double, const at::Tensor&))             \
  X(alpha_dropout_, INPLACE, void(at::Tensor&, double, const at::Tensor&))                    \
  X(alpha_dropout_backward, OUT, at::Tensor(const at::Tensor&, double, const at::Tensor&))    \
  X(selu_alpha_dropout, OUT, at::Tensor(const at::Tensor&, double, const at::Tensor&))        \
  X(selu_alpha_dropout_backward, OUT,                                                         \
    at::Tensor(const at::Tensor&, const at::Tensor&, double, const at::Tensor&))              \
  X(dropout_keep_mask, MASK, at::Tensor(const at::Tensor&, c10::SymInt, double))

// SELU_EXT_IF_AUTOGRAD(kind, code...): the code for OUT and INPLACE operators, nothing
// for MASK. SELU_EXT_IF_INPLACE(kind, code...): the code for INPLACE operators only.
#define SELU_EXT_IF_AUTOGRAD(kind, ...) SELU_EXT_IF_AUTOGRAD_##kind(__VA_ARGS__)
#define SELU_EXT_IF_AUTOGRAD_OUT(...) __VA_ARGS__
#define SELU_EXT_IF_AUTOGRAD_INPLACE(...) __VA_ARGS__
#define SELU_EXT_IF_AUTOGRAD_MASK(...)
#define SELU_EXT_IF_INPLACE(kind, ...) SELU_EXT_IF_INPLACE_##kind(__VA_ARGS__)
#define SELU_EXT_IF_INPLACE_OUT(...)
#define SELU_EXT_IF_INPLACE_INPLACE(...) __VA_ARGS__
#define SELU_EXT_IF_INPLACE_MASK(...)
