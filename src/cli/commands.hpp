// The `cairn` command's subcommands as functions: each takes its parsed arguments and the streams
// to write to, and returns the process exit status. main() only parses the command line.
#pragma once

#include <cairn/process_group.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace cairn::cli {

/// Exit statuses of every subcommand.
inline constexpr int exit_ok = 0;
/// verify: a chunk does not match its checksum; diff: the checkpoints differ; ls: a published
/// checkpoint is unreadable (or, with --verify, damaged).
inline constexpr int exit_found = 1;
/// Wrong usage, or a checkpoint that cannot be read at all.
inline constexpr int exit_error = 2;

/// What every subcommand takes besides its own arguments.
struct Common {
  /// Write one JSON document to `out` instead of text.
  bool json = false;
  /// Draw a progress bar on `err` during long reads (main() sets it when stderr is a terminal).
  bool progress = false;
  /// The ranks that share collective work (verify, convert); null: this process alone, no MPI.
  /// ls, info and diff run on rank 0 alone; the other ranks return exit_ok without output.
  std::shared_ptr<ProcessGroup> group;
};

/// `cairn ls ROOT`: the checkpoints under a directory.
struct LsArgs {
  Common common;
  std::string root;
  /// CheckpointManager's naming: "<prefix><step>".
  std::string prefix = "step_";
  /// Check every chunk of every published checkpoint (slow): status "verified" or "corrupt".
  bool verify = false;
};

/// `cairn info CKPT`: what a checkpoint holds.
struct InfoArgs {
  Common common;
  std::string checkpoint;
};

/// `cairn verify CKPT`: every chunk against its checksum.
struct VerifyArgs {
  Common common;
  std::string checkpoint;
  /// Read buffer per rank.
  std::size_t buffer_bytes = std::size_t{64} << 20;
};

/// `cairn diff A B`: entries added, removed and changed.
struct DiffArgs {
  Common common;
  std::string first;
  std::string second;
  /// Largest piece of one array held in memory at once, per checkpoint.
  std::size_t buffer_bytes = std::size_t{64} << 20;
};

/// `cairn convert SRC DST`.
struct ConvertArgs {
  Common common;
  std::string source;
  std::string target;
  /// "hdf5" (Cairn's HDF5 layout), "posix" (Cairn's posix layout) or "serial-hdf5" (one plain
  /// HDF5 file, not a checkpoint: arrays as datasets, scalars as attributes).
  std::string to = "hdf5";
  /// Replace an existing target.
  bool force = false;
  std::size_t buffer_bytes = std::size_t{64} << 20;
};

/// Each returns exit_ok, exit_found or exit_error (see above); results go to `out`, errors and the
/// progress bar to `err`. Collective over args.common.group (verify and convert share the work;
/// the others run on its rank 0 only). Errors are reported on `err` (and as {"error": ...} on
/// `out` with --json) and in the exit status, not thrown.
int run_ls(const LsArgs& args, std::ostream& out, std::ostream& err);
int run_info(const InfoArgs& args, std::ostream& out, std::ostream& err);
int run_verify(const VerifyArgs& args, std::ostream& out, std::ostream& err);
int run_diff(const DiffArgs& args, std::ostream& out, std::ostream& err);
int run_convert(const ConvertArgs& args, std::ostream& out, std::ostream& err);

/// "0-3,5,7-8": sorted distinct ranks with runs compressed.
std::string rank_ranges(const std::vector<int>& ranks);
/// "42 s", "5 min", "3 h", "2 d": a duration in seconds, rounded down to its largest unit.
std::string human_age(std::int64_t seconds);

}  // namespace cairn::cli
