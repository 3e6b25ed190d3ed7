#include "plan/plan_codec.hpp"

#include "core/metadata_codec.hpp"

#include <cstring>

namespace cairn::detail {

namespace {

void encode_items_into(ByteWriter& out, const std::vector<WriteItem>& items) {
  out.u64(items.size());
  for (const WriteItem& item : items) {
    out.i32(item.entry);
    out.i32(item.chunk);
    encode_region(out, item.region);
    out.i64s(item.source_offset);
  }
}

std::vector<WriteItem> decode_items_from(ByteReader& in) {
  std::vector<WriteItem> items(in.count(32));
  for (WriteItem& item : items) {
    item.entry = in.i32();
    item.chunk = in.i32();
    item.region = decode_region(in);
    item.source_offset = in.i64s();
  }
  return items;
}

void encode_entries_into(ByteWriter& out, const std::vector<EntryInfo>& entries) {
  out.u64(entries.size());
  for (const EntryInfo& e : entries) {
    encode_entry_info(out, e, false);
    out.u8(static_cast<std::uint8_t>(e.compression));
    out.i32(e.compression_level);
  }
}

std::vector<EntryInfo> decode_entries_from(ByteReader& in) {
  std::vector<EntryInfo> entries(in.count(16));
  for (EntryInfo& e : entries) {
    e = decode_entry_info(in, false);
    e.compression = static_cast<Compression>(in.u8());
    e.compression_level = in.i32();
  }
  return entries;
}

}  // namespace

std::vector<std::byte> encode_plan(const SavePlan& plan) {
  ByteWriter out;
  encode_entries_into(out, plan.entries);
  encode_items_into(out, plan.items);
  return std::move(out.bytes());
}

SavePlan decode_plan(const std::vector<std::byte>& bytes) {
  ByteReader in(bytes.data(), bytes.size(), "save plan");
  SavePlan plan;
  plan.entries = decode_entries_from(in);
  plan.items = decode_items_from(in);
  return plan;
}

std::vector<std::byte> encode_entries(const std::vector<EntryInfo>& entries) {
  ByteWriter out;
  encode_entries_into(out, entries);
  return std::move(out.bytes());
}

std::vector<EntryInfo> decode_entries(const std::vector<std::byte>& bytes) {
  ByteReader in(bytes.data(), bytes.size(), "plan entries");
  return decode_entries_from(in);
}

std::vector<std::byte> encode_items(const std::vector<WriteItem>& items) {
  ByteWriter out;
  encode_items_into(out, items);
  return std::move(out.bytes());
}

std::vector<WriteItem> decode_items(const std::vector<std::byte>& bytes) {
  ByteReader in(bytes.data(), bytes.size(), "plan items");
  return decode_items_from(in);
}

}  // namespace cairn::detail
