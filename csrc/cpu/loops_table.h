// The table of one CPU variant (cpu/kernels.h): its name and a row of loops per dtype,
// the loop templates of vec_kernels.h or scalar_kernels.h instantiated for each.
// Included at the end of those two files, in the variant's namespace (SELU_EXT_ISA).

template <DType D>
constexpr Loops loops_for() {
  return {
      .selu_loop = selu_loop_t<D>,
      .selu_backward_loop = selu_backward_loop_t<D>,
      .alpha_dropout_loop = alpha_dropout_loop_t<D>,
      .alpha_dropout_backward_loop = alpha_dropout_backward_loop_t<D>,
      .selu_alpha_dropout_loop = selu_alpha_dropout_loop_t<D>,
      .selu_alpha_dropout_backward_loop = selu_alpha_dropout_backward_loop_t<D>,
      .dropout_keep_mask_loop = dropout_keep_mask_loop,
  };
}

// Rows in DType order.
static_assert(static_cast<int>(DType::kHalf) == 0 && static_cast<int>(DType::kBFloat16) == 1 &&
              static_cast<int>(DType::kFloat) == 2 && static_cast<int>(DType::kDouble) == 3);
extern const Kernels kTable;
const Kernels kTable = {SELU_EXT_ISA_NAME,
                        {loops_for<DType::kHalf>(), loops_for<DType::kBFloat16>(),
                         loops_for<DType::kFloat>(), loops_for<DType::kDouble>()}};
