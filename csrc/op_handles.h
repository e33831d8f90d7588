// selu_ext: op_<name>(), the dispatcher handle of every operator in op_list.h, found
// on first use. For code that calls the operators through the dispatcher (the
// autograd kernels, the eager entry points of selu_ext._C), so that every dispatch
// key (autograd, vmap, DTensor, ...) sees an ordinary operator call.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#include "op_list.h"

namespace selu_ext {

#define SELU_EXT_OP_HANDLE(name, kind, ...)                                               \
  inline const c10::TypedOperatorHandle<__VA_ARGS__>& op_##name() {                       \
    static const auto h =                                                                 \
        c10::Dispatcher::singleton().findSchemaOrThrow("selu_ext::" #name, "").typed<__VA_ARGS__>(); \
    return h;                                                                             \
  }
SELU_EXT_OPS(SELU_EXT_OP_HANDLE)
#undef SELU_EXT_OP_HANDLE

}  // namespace selu_ext
