#include "test_support.hpp"

#include <unistd.h>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace cairn::test {

const std::vector<DType> all_dtypes = {DType::Int8,   DType::Int16,   DType::Int32,   DType::Int64,   DType::UInt8,
                                       DType::UInt16, DType::UInt32,  DType::UInt64,  DType::Float32, DType::Float64,
                                       DType::Bool,   DType::Float16, DType::BFloat16};

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

TempDir::TempDir(MPI_Comm comm, const char* base_dir) : m_comm(comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  char buffer[4096] = {};
  if (rank == 0) {
    const char* base = base_dir ? base_dir : std::getenv("CAIRN_TEST_TMPDIR");
    if (base == nullptr) base = std::getenv("TMPDIR");
    std::string templ = std::string(base ? base : "/tmp") + "/cairn-test-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    templ.copy(buffer, sizeof buffer - 1);
  }
  MPI_Bcast(buffer, sizeof buffer, MPI_CHAR, 0, comm);
  m_path = buffer;
}

TempDir::~TempDir() {
  MPI_Barrier(m_comm);
  int rank = 0;
  MPI_Comm_rank(m_comm, &rank);
  if (rank == 0) {
    std::error_code ec;
    // Restore permissions that a test may have removed, then delete.
    for (auto& p : std::filesystem::recursive_directory_iterator(m_path, ec))
      std::filesystem::permissions(p.path(), std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::permissions(m_path, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(m_path, ec);
  }
  MPI_Barrier(m_comm);
}

namespace {

// Splits n into parts uneven on purpose: part i gets a share weighted by (i + 1).
std::vector<std::int64_t> uneven_cuts(std::int64_t n, int parts) {
  std::vector<std::int64_t> cuts(static_cast<std::size_t>(parts) + 1, 0);
  const std::int64_t weight_total = std::int64_t{parts} * (parts + 1) / 2;
  std::int64_t acc = 0;
  for (int i = 0; i < parts; ++i) {
    acc += i + 1;
    cuts[static_cast<std::size_t>(i) + 1] = n * acc / weight_total;
  }
  return cuts;
}

std::vector<int> grid_dims(int parts, std::size_t ndim) {
  std::vector<int> dims(ndim, 0);
  MPI_Dims_create(parts, static_cast<int>(ndim), dims.data());
  return dims;
}

}  // namespace

std::vector<Block> decompose(const Extents& shape, int parts, int part, Decomposition kind) {
  std::vector<Block> blocks;
  auto slab = [&](int i, int n) {
    const auto cuts = uneven_cuts(shape[0], n);
    Block b{Extents(shape.size(), 0), shape};
    b.offset[0] = cuts[static_cast<std::size_t>(i)];
    b.shape[0] = cuts[static_cast<std::size_t>(i) + 1] - cuts[static_cast<std::size_t>(i)];
    return b;
  };
  switch (kind) {
    case Decomposition::Slabs: blocks.push_back(slab(part, parts)); break;
    case Decomposition::EmptyFirst:
      if (parts == 1)
        blocks.push_back(slab(0, 1));
      else if (part > 0)
        blocks.push_back(slab(part - 1, parts - 1));
      break;
    case Decomposition::TwoPerRank:
      blocks.push_back(slab(part, 2 * parts));
      blocks.push_back(slab(part + parts, 2 * parts));
      break;
    case Decomposition::Grid: {
      const std::vector<int> dims = grid_dims(parts, shape.size());
      Block b{Extents(shape.size(), 0), Extents(shape.size(), 0)};
      int rest = part;
      for (std::size_t d = shape.size(); d-- > 0;) {
        const int coord = rest % dims[d];
        rest /= dims[d];
        const auto cuts = uneven_cuts(shape[d], dims[d]);
        b.offset[d] = cuts[static_cast<std::size_t>(coord)];
        b.shape[d] = cuts[static_cast<std::size_t>(coord) + 1] - cuts[static_cast<std::size_t>(coord)];
      }
      blocks.push_back(b);
      break;
    }
  }
  // Zero-extent blocks are not chunks: a rank that gets one simply holds nothing.
  std::vector<Block> nonempty;
  for (const Block& b : blocks) {
    bool empty = false;
    for (auto e : b.shape) empty = empty || e == 0;
    if (!empty) nonempty.push_back(b);
  }
  return nonempty;
}

double pattern(std::int64_t linear_index, int seed) {
  return static_cast<double>(linear_index % 1000003) * 0.5 + seed * 1000.0 + 0.25;
}

void store_element(DType dtype, std::uint64_t bits, float f32, double f64, std::byte* out) {
  switch (dtype) {
    case DType::Bool: out[0] = static_cast<std::byte>(bits & 1u); return;
    case DType::Float32: std::memcpy(out, &f32, 4); return;
    case DType::Float64: std::memcpy(out, &f64, 8); return;
    case DType::Float16:
    case DType::BFloat16: {
      const std::uint16_t half = dtype == DType::Float16 ? static_cast<std::uint16_t>(0x3800u | (bits & 0x03FFu))
                                                         : static_cast<std::uint16_t>(0x3F00u | (bits & 0x007Fu));
      std::memcpy(out, &half, 2);
      return;
    }
    default: std::memcpy(out, &bits, dtype_size(dtype));  // little-endian: the low bytes
  }
}

std::int64_t global_linear(const Extents& shape, const Block& block, const Extents& local) {
  std::int64_t linear = 0;
  for (std::size_t d = 0; d < shape.size(); ++d) linear = linear * shape[d] + block.offset[d] + local[d];
  return linear;
}

void for_each_element(const Block& block, const std::function<void(const Extents&, std::int64_t)>& visit) {
  const std::size_t n = block.shape.size();
  std::int64_t total = 1;
  for (auto e : block.shape) total *= e;
  Extents idx(n, 0);
  for (std::int64_t pos = 0; pos < total; ++pos) {
    visit(idx, pos);
    for (std::size_t d = n; d-- > 0;) {
      if (++idx[d] < block.shape[d]) break;
      idx[d] = 0;
    }
  }
}

std::int64_t column_major_position(const Extents& shape, const Extents& local) {
  std::int64_t pos = 0;
  for (std::size_t d = shape.size(); d-- > 0;) pos = pos * shape[d] + local[d];
  return pos;
}

bool all_ranks(bool local, MPI_Comm comm) {
  int value = local ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MIN, comm);
  return value == 1;
}

}  // namespace cairn::test
