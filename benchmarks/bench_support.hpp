// What the benchmark programs share: MPI for the length of main(), integer options, the usage
// message, and a private directory under --dir that every rank agrees on.
#pragma once

#include <mpi.h>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace cairn::bench {

/// MPI_Init_thread on construction, MPI_Finalize on destruction: main() may return anywhere.
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv, int thread_level) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, thread_level, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &m_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m_size);
  }
  ~MpiSession() { MPI_Finalize(); }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return m_rank; }
  int size() const { return m_size; }

 private:
  int m_rank = 0;
  int m_size = 1;
};

/// `text` as a whole decimal integer in [low, high] into `out`; false (and `out` untouched) when
/// it is not one.
inline bool parse_int(const std::string& text, std::int64_t low, std::int64_t high, std::int64_t& out) {
  try {
    std::size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used != text.size() || value < low || value > high) return false;
    out = value;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

/// The value of option argv[i] (the next argument) into `out`, stepping `i` past it; false when
/// argv[i] is the last argument.
inline bool option_value(int argc, char** argv, int& i, std::string& out) {
  if (i + 1 >= argc) return false;
  out = argv[++i];
  return true;
}

/// Rank 0 prints `problem` (to stderr) or, when it is empty, only the usage (to stdout, as asked
/// for with --help); returns the exit status: 2 for a problem, 0 for help.
inline int print_usage(int rank, const char* program, const std::string& problem, const char* usage) {
  if (rank == 0) {
    if (problem.empty())
      std::fputs(usage, stdout);
    else
      std::fprintf(stderr, "%s: %s\n%s", program, problem.c_str(), usage);
  }
  return problem.empty() ? 0 : 2;
}

/// Collective: `parent`/`prefix`.<rank 0's pid>, one name for every rank, made (with its parents)
/// by rank 0 before any rank returns; concurrent runs never share it.
inline std::string make_run_dir(const std::string& parent, const std::string& prefix) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  long long pid = static_cast<long long>(::getpid());
  MPI_Bcast(&pid, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  const std::string dir = parent + "/" + prefix + "." + std::to_string(pid);
  int made = 1;
  if (rank == 0) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    made = ec ? 0 : 1;
    if (ec) std::fprintf(stderr, "cannot create '%s': %s\n", dir.c_str(), ec.message().c_str());
  }
  MPI_Bcast(&made, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!made) throw std::runtime_error("cannot create the run directory '" + dir + "'");
  return dir;
}

/// Collective: once every rank is done with it, rank 0 removes `dir` and everything in it.
inline void remove_run_dir(const std::string& dir) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
}

}  // namespace cairn::bench
