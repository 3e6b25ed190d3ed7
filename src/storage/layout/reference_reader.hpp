// Reading incremental checkpoints: chunks whose bytes an earlier checkpoint holds
// (ChunkRecord::source) are read from that checkpoint.
#pragma once

#include <cairn/storage.hpp>

#include <memory>
#include <string>

namespace cairn::detail {

/// The reader of every layout Cairn writes, without following references: make_reader() less the
/// wrapper below. For the checkpoints that hold referenced chunks, and for tools that only look
/// at one checkpoint's own metadata (retention).
std::unique_ptr<StorageReader> make_layout_reader();

/// A reader that serves requests through `own` (the checkpoint's own reader) and, for regions
/// covered by chunks held by an earlier checkpoint, through a reader of that checkpoint, opened
/// once per open(). Its metadata is `own`'s. open() throws the holder's error (StorageError when
/// it is missing), naming the holder and an entry that refers to it, and CorruptCheckpointError
/// when the holder does not hold a referenced chunk with the recorded checksum.
std::unique_ptr<StorageReader> follow_references(std::shared_ptr<StorageReader> own);

/// True when `reader` came from follow_references() (make_reader() does).
bool follows_references(const StorageReader& reader) noexcept;

}  // namespace cairn::detail
