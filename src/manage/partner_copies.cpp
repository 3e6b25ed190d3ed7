// Files sent between ranks for the node-local tier: partner copies after a save, and their way
// back when a node lost its copy. Point to point on the tier's own communicator, in rounds of one
// block per transfer, all nonblocking, so that ranks that both send and receive never deadlock:
// every rank posts its round-k messages once its round k-1 is complete.
#include "manage/tier_files.hpp"

#include <cairn/error.hpp>

#include "comm/agree.hpp"
#include "core/checksum.hpp"
#include "storage/common/publish.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <limits>
#include <memory>

namespace cairn::detail::tier {

namespace {

constexpr std::size_t block_bytes = std::size_t{4} << 20;
constexpr int transfer_tag = 31415;
constexpr std::uint64_t unreadable = std::numeric_limits<std::uint64_t>::max();

void make_parents(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) make_directories(path.substr(0, slash));
}

// This rank's end of one transfer.
struct End {
  std::size_t index = 0;
  bool sending = false;
  int peer = 0;
  int fd = -1;
  std::uint64_t size = 0;
  std::uint64_t blocks = 0;
  std::string temp;  // receiving: where the bytes go until complete
  std::vector<std::byte> buffer;
  Checksummer sum;
  bool broken = false;  // this end failed: keep matching the messages, write nothing
};

void check(int rc, const char* call, int rank) {
  if (rc != MPI_SUCCESS)
    throw CommunicationError(std::string(call) + " failed on rank " + std::to_string(rank) + " in a file transfer");
}

}  // namespace

std::vector<std::uint64_t> transfer_files(ProcessGroup& group, const std::vector<FileTransfer>& transfers,
                                          const std::string& what) {
  const int rank = group.rank();
  const MPI_Comm comm = group.mpi_comm();
  std::vector<std::uint64_t> sums(transfers.size(), 0);
  std::exception_ptr failure;
  auto failed = [&](End& end) {
    if (!failure) failure = std::current_exception();
    end.broken = true;
  };
  std::vector<End> ends;
  for (std::size_t i = 0; i < transfers.size(); ++i) {
    const FileTransfer& t = transfers[i];
    if (t.from == t.to) throw InternalError(what + ": a transfer from rank " + std::to_string(t.from) + " to itself");
    if (t.from != rank && t.to != rank) continue;
    End& end = ends.emplace_back();
    end.index = i;
    end.sending = t.from == rank;
    end.peer = end.sending ? t.to : t.from;
  }
  if (!ends.empty() && comm == MPI_COMM_NULL) throw UsageError(what + ": file transfers need an MPI communicator");

  // Round of sizes: a sender that cannot read its file says so with `unreadable`.
  std::vector<MPI_Request> requests;
  for (End& end : ends) {
    if (end.sending) {
      const std::string& source = transfers[end.index].source;
      end.fd = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
      struct stat st {};
      try {
        if (end.fd < 0 || ::fstat(end.fd, &st) != 0)
          throw StorageError("rank " + std::to_string(rank) + " cannot read '" + source + "': " + errno_text(errno));
        end.size = static_cast<std::uint64_t>(st.st_size);
      } catch (const Error&) {
        failed(end);
        end.size = unreadable;
      }
    }
    requests.push_back(MPI_REQUEST_NULL);
    check(end.sending ? MPI_Isend(&end.size, 1, MPI_UINT64_T, end.peer, transfer_tag, comm, &requests.back())
                      : MPI_Irecv(&end.size, 1, MPI_UINT64_T, end.peer, transfer_tag, comm, &requests.back()),
          "MPI_Isend/MPI_Irecv", rank);
  }
  if (!requests.empty())
    check(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall", rank);
  std::uint64_t rounds = 0;
  for (End& end : ends) {
    if (end.size == unreadable) {
      end.blocks = 0;
      if (!end.sending) {
        try {
          throw StorageError("rank " + std::to_string(end.peer) + " could not read '" + transfers[end.index].source +
                             "' to send it to rank " + std::to_string(rank));
        } catch (const Error&) {
          failed(end);
        }
      }
      continue;
    }
    end.blocks = (end.size + block_bytes - 1) / block_bytes;
    rounds = std::max(rounds, end.blocks);
    end.buffer.resize(static_cast<std::size_t>(std::min<std::uint64_t>(end.size, block_bytes)));
    if (end.sending || end.broken) continue;
    const std::string& target = transfers[end.index].target;
    end.temp = target + ".incoming";
    try {
      make_parents(target);
      end.fd = ::open(end.temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (end.fd < 0) throw StorageError("cannot create '" + end.temp + "': " + errno_text(errno));
    } catch (const Error&) {
      failed(end);
    }
  }

  for (std::uint64_t k = 0; k < rounds; ++k) {
    requests.clear();
    std::vector<End*> in_round;
    for (End& end : ends) {
      if (k >= end.blocks) continue;
      const std::uint64_t offset = k * block_bytes;
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(block_bytes, end.size - offset));
      if (end.sending && !end.broken) {
        int error = 0;
        if (read_at(end.fd, end.buffer.data(), n, offset, error) != n) {
          try {
            throw StorageError("rank " + std::to_string(rank) + " cannot read '" + transfers[end.index].source +
                               "': " + (error != 0 ? errno_text(error) : std::string("it shrank")));
          } catch (const Error&) {
            failed(end);
          }
        }
        if (!end.broken) end.sum.update(end.buffer.data(), n);
      }
      requests.push_back(MPI_REQUEST_NULL);
      check(end.sending ? MPI_Isend(end.buffer.data(), static_cast<int>(n), MPI_BYTE, end.peer, transfer_tag, comm,
                                    &requests.back())
                        : MPI_Irecv(end.buffer.data(), static_cast<int>(n), MPI_BYTE, end.peer, transfer_tag, comm,
                                    &requests.back()),
            "MPI_Isend/MPI_Irecv", rank);
      in_round.push_back(&end);
    }
    if (!requests.empty())
      check(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall", rank);
    for (End* end : in_round) {
      if (end->sending || end->broken) continue;
      const std::uint64_t offset = k * block_bytes;
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(block_bytes, end->size - offset));
      end->sum.update(end->buffer.data(), n);
      std::size_t done = 0;
      while (done < n) {
        const ssize_t put = ::pwrite(end->fd, end->buffer.data() + done, n - done, static_cast<off_t>(offset + done));
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) {
          try {
            throw StorageError("rank " + std::to_string(rank) + " cannot write '" + end->temp +
                               "': " + errno_text(put < 0 ? errno : EIO));
          } catch (const Error&) {
            failed(*end);
          }
          break;
        }
        done += static_cast<std::size_t>(put);
      }
    }
  }

  // The bytes are all there, or some rank failed: agree before any target takes its name.
  std::exception_ptr outcome;
  try {
    agree(group, what, failure);
  } catch (...) {
    outcome = std::current_exception();
  }
  failure = nullptr;
  for (End& end : ends) {
    if (!end.sending && end.fd >= 0) {
      const std::string& target = transfers[end.index].target;
      try {
        if (!outcome && !end.broken) {
          if (::fsync(end.fd) != 0) throw StorageError("cannot sync '" + end.temp + "': " + errno_text(errno));
          if (::rename(end.temp.c_str(), target.c_str()) != 0)
            throw StorageError("cannot rename into '" + target + "': " + errno_text(errno));
          fsync_path(target.substr(0, target.find_last_of('/')));
        }
      } catch (const Error&) {
        failed(end);
      }
      if (outcome || end.broken) ::unlink(end.temp.c_str());
    }
    if (end.fd >= 0) ::close(end.fd);
    end.fd = -1;
    if (!end.broken) sums[end.index] = end.sum.digest();
  }
  if (outcome) std::rethrow_exception(outcome);
  agree(group, what + " (complete)", failure);
  return sums;
}

}  // namespace cairn::detail::tier
