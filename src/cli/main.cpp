// `cairn`: the command-line tool. Parses the command line, sets up MPI when launched by mpirun,
// and calls the subcommand's function (cli/commands.hpp), which does the work.
#include <cairn/checkpointer.hpp>
#include <cairn/process_group.hpp>

#include "cli/commands.hpp"

#include <mpi.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <ostream>
#include <streambuf>
#include <string>

namespace {

// True when a launcher started this process as one rank of a job: then the tool joins MPI, and
// verify and convert share their work among the ranks. Otherwise MPI is never initialized.
bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

// Discards output: ranks other than 0 print nothing.
class NullBuffer : public std::streambuf {
 protected:
  int overflow(int c) override { return c; }
};

constexpr const char* exit_codes =
    "Exit status: 0 success (verify: every chunk matches its checksum; diff: identical); 1 verify found damaged "
    "chunks, diff found differences, or ls found an unreadable (with --verify: damaged) checkpoint; 2 wrong usage or "
    "a checkpoint that cannot be read.\nRun under mpirun to share verify and convert among ranks; ls, info and diff "
    "run on rank 0.";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cairn " + std::string(cairn::version()) +
               ": inspect, check, compare and convert Cairn checkpoints (a checkpoint is a directory)."};
  app.set_version_flag("--version", std::string("cairn ") + cairn::version());
  app.require_subcommand(1);
  app.footer(exit_codes);
  bool json = false;

  cairn::cli::LsArgs ls;
  CLI::App* ls_cmd = app.add_subcommand("ls",
                                        "List the checkpoints under a directory: step, size, age and status (complete, "
                                        "verified, corrupt, unreadable, incomplete, replaced, removing).");
  ls_cmd->add_option("ROOT", ls.root, "Directory holding checkpoints (a CheckpointManager root)")->required();
  ls_cmd->add_option("--prefix", ls.prefix, "Name prefix before the step number")->capture_default_str();
  ls_cmd->add_flag("--verify", ls.verify, "Check every chunk of every checkpoint against its checksum (slow)");

  cairn::cli::InfoArgs info;
  CLI::App* info_cmd = app.add_subcommand(
      "info",
      "Show a checkpoint's format, layout and entries: kind, dtype, global shape, chunks, bytes, saving "
      "ranks, scalar values.");
  info_cmd->add_option("CKPT", info.checkpoint, "Checkpoint directory")->required();

  cairn::cli::VerifyArgs verify;
  std::size_t verify_buffer_mib = 64;
  CLI::App* verify_cmd = app.add_subcommand(
      "verify", "Read every chunk and compare it with its checksum; name each damaged chunk. Exit 1 when any is.");
  verify_cmd->add_option("CKPT", verify.checkpoint, "Checkpoint directory")->required();
  verify_cmd->add_option("--buffer-mib", verify_buffer_mib, "Read buffer per rank, in MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));

  cairn::cli::DiffArgs diff;
  std::size_t diff_buffer_mib = 64;
  CLI::App* diff_cmd = app.add_subcommand(
      "diff",
      "Compare two checkpoints: entries added, removed and changed, with the number of differing elements and "
      "the largest absolute difference per array. Exit 1 when they differ. Reads stored values without "
      "checking checksums (use verify for that).");
  diff_cmd->add_option("A", diff.first, "First checkpoint")->required();
  diff_cmd->add_option("B", diff.second, "Second checkpoint")->required();
  diff_cmd->add_option("--buffer-mib", diff_buffer_mib, "Largest piece of an array read at once, in MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));

  cairn::cli::ConvertArgs convert;
  std::size_t convert_buffer_mib = 64;
  CLI::App* convert_cmd = app.add_subcommand(
      "convert",
      "Convert a checkpoint to another layout (hdf5, posix) or export it as one plain HDF5 file "
      "(serial-hdf5: every array a dataset of its global shape, scalars as attributes). Checks every "
      "chunk's checksum; writes under a temporary name and renames.");
  convert_cmd->add_option("SRC", convert.source, "Checkpoint to read")->required();
  convert_cmd->add_option("DST", convert.target, "Checkpoint directory (hdf5, posix) or file (serial-hdf5) to write")
      ->required();
  convert_cmd->add_option("--to", convert.to, "Target format")
      ->capture_default_str()
      ->check(CLI::IsMember({"hdf5", "posix", "serial-hdf5"}));
  convert_cmd->add_flag("--force", convert.force, "Replace DST if it exists");
  convert_cmd->add_option("--buffer-mib", convert_buffer_mib, "Memory per rank for copying, in MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));

  for (CLI::App* cmd : {ls_cmd, info_cmd, verify_cmd, diff_cmd, convert_cmd}) {
    cmd->add_flag("--json", json, "Write one JSON document to stdout instead of text");
    cmd->footer(exit_codes);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : cairn::cli::exit_error;
  }

  const bool use_mpi = launched_by_mpi();
  if (use_mpi) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  }
  int rc = cairn::cli::exit_error;
  {
    cairn::cli::Common common;
    common.json = json;
    common.progress = ::isatty(STDERR_FILENO) == 1;
    if (use_mpi) {
      try {
        common.group = std::make_shared<cairn::MpiProcessGroup>(MPI_COMM_WORLD);
      } catch (const std::exception& e) {
        std::cerr << "cairn: cannot set up MPI: " << e.what() << '\n';
        MPI_Abort(MPI_COMM_WORLD, cairn::cli::exit_error);
      }
    }
    const bool root = !common.group || common.group->rank() == 0;
    NullBuffer null_buffer;
    std::ostream null_stream(&null_buffer);
    std::ostream& out = root ? std::cout : null_stream;
    std::ostream& err = root ? std::cerr : null_stream;
    constexpr std::size_t mib = std::size_t{1} << 20;

    if (*ls_cmd) {
      ls.common = common;
      rc = cairn::cli::run_ls(ls, out, err);
    } else if (*info_cmd) {
      info.common = common;
      rc = cairn::cli::run_info(info, out, err);
    } else if (*verify_cmd) {
      verify.common = common;
      verify.buffer_bytes = verify_buffer_mib * mib;
      rc = cairn::cli::run_verify(verify, out, err);
    } else if (*diff_cmd) {
      diff.common = common;
      diff.buffer_bytes = diff_buffer_mib * mib;
      rc = cairn::cli::run_diff(diff, out, err);
    } else if (*convert_cmd) {
      convert.common = common;
      convert.buffer_bytes = convert_buffer_mib * mib;
      rc = cairn::cli::run_convert(convert, out, err);
    }
    std::cout.flush();
    if (use_mpi) {
      // ls, info and diff ran on rank 0 alone: every rank exits with its status.
      MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    }
  }  // the process group is freed before MPI_Finalize
  if (use_mpi) MPI_Finalize();
  return rc;
}
