// Writes a small checkpoint for the tests of the `cairn` executable: `write_sample DIR` saves
// DIR/ckpt (HDF5) and DIR/px (posix), and incremental saves of them, DIR/ckpt_inc and DIR/px_inc,
// one process, no MPI.
#include <cairn/cairn.hpp>

#include <cstdint>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: write_sample DIR\n";
    return 2;
  }
  try {
    const std::string dir = argv[1];
    std::vector<double> field(64 * 32);
    for (std::size_t i = 0; i < field.size(); ++i) field[i] = 0.25 * static_cast<double>(i);
    std::int64_t step = 7;
    cairn::State state;
    cairn::ArrayEntry& array = state.add_array("fields/u", cairn::DType::Float64, {64, 32});
    array.add_chunk({0, 0}, {32, 32}, field.data());
    array.add_chunk({32, 0}, {32, 32}, field.data() + 32 * 32);
    state.add_scalar("step", step);
    cairn::Checkpointer checkpointer;
    cairn::SaveOptions options;
    options.overwrite = true;
    checkpointer.save(state, dir + "/ckpt", options);
    options.writer = cairn::make_posix_writer();
    checkpointer.save(state, dir + "/px", options);
    // Incremental saves after the second chunk changed: ckpt_inc and px_inc refer to ckpt and px.
    for (std::size_t i = 32 * 32; i < field.size(); ++i) field[i] = -field[i];
    options.incremental_from = dir + "/px";
    checkpointer.save(state, dir + "/px_inc", options);
    options.writer = nullptr;
    options.incremental_from = dir + "/ckpt";
    checkpointer.save(state, dir + "/ckpt_inc", options);
  } catch (const std::exception& e) {
    std::cerr << "write_sample: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
