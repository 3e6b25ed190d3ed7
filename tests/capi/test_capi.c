/* The C API from C: round trips of every dtype with resharding, column-major arrays, several chunks
 * per rank, replicated arrays, scalars and blobs, asynchronous saves, the checkpoint manager, and
 * every error path with its code and message. Runs under mpiexec on any number of ranks; returns
 * non-zero (on every rank) when any check failed on any rank. */
#define _POSIX_C_SOURCE 200809L

#include <cairn/cairn.h>

#include <mpi.h>

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int g_rank = 0;
static int g_size = 1;
static int g_failures = 0;
static char g_dir[1024];

static void fail_at(int line, const char* what, const char* format, ...) {
  /* One write per failure, so that the lines of several ranks do not interleave. */
  char detail[2048];
  va_list args;
  va_start(args, format);
  vsnprintf(detail, sizeof detail, format, args);
  va_end(args);
  fprintf(stderr, "[rank %d] test_capi.c:%d: FAILED: %s: %s\n", g_rank, line, what, detail);
  ++g_failures;
}

#define CHECK(cond, ...)                                \
  do {                                                  \
    if (!(cond)) fail_at(__LINE__, #cond, __VA_ARGS__); \
  } while (0)

/* A call that must succeed; on failure reports its code and message. */
#define EXPECT_OK(call)                                                                         \
  do {                                                                                          \
    const int rc_ = (call);                                                                     \
    if (rc_ != CAIRN_SUCCESS)                                                                   \
      fail_at(__LINE__, #call, "returned %d: %s", rc_, cairn_last_error());                     \
    else if (cairn_last_error()[0] != '\0')                                                     \
      fail_at(__LINE__, #call, "succeeded but cairn_last_error() is '%s'", cairn_last_error()); \
  } while (0)

/* A call that must fail with `code` and a message containing `part1`, `part2`, the function's name
 * and the rank. */
static void expect_error(int line, const char* call, int rc, int code, const char* function, const char* part1,
                         const char* part2) {
  const char* message = cairn_last_error();
  char rank_text[32];
  snprintf(rank_text, sizeof rank_text, "rank %d", g_rank);
  if (rc != code) {
    fail_at(line, call, "returned %d, expected %d (message: '%s')", rc, code, message);
    return;
  }
  if (strstr(message, function) == NULL) fail_at(line, call, "message '%s' does not name %s", message, function);
  if (strstr(message, rank_text) == NULL) fail_at(line, call, "message '%s' does not name %s", message, rank_text);
  if (part1 != NULL && strstr(message, part1) == NULL)
    fail_at(line, call, "message '%s' does not contain '%s'", message, part1);
  if (part2 != NULL && strstr(message, part2) == NULL)
    fail_at(line, call, "message '%s' does not contain '%s'", message, part2);
}
#define EXPECT_ERROR(call, code, function, part1, part2) \
  expect_error(__LINE__, #call, (call), code, function, part1, part2)

/* ---- helpers ---- */

static void path_of(char* out, size_t size, const char* name) {
  snprintf(out, size, "%s/%s", g_dir, name);
}

/* The block of n items that part p of `parts` holds. */
static void split(int64_t n, int parts, int p, int64_t* start, int64_t* count) {
  const int64_t base = n / parts;
  const int64_t extra = n % parts;
  *start = p * base + (p < extra ? p : extra);
  *count = base + (p < extra ? 1 : 0);
}

static const size_t kDtypeSize[13] = {1, 2, 4, 8, 1, 2, 4, 8, 4, 8, 1, 2, 2};
#define NUM_DTYPES 13

/* Writes the value of global element `g` of the test array of `dtype` to `out`: distinct for every
 * element and dtype, valid for the type (bool 0/1, finite floats). */
static void element(int dtype, int64_t g, unsigned char* out) {
  switch (dtype) {
    case CAIRN_BOOL: out[0] = (unsigned char)((g + dtype) % 2); return;
    case CAIRN_FLOAT32: {
      const float v = (float)g * 0.5f + (float)dtype;
      memcpy(out, &v, sizeof v);
      return;
    }
    case CAIRN_FLOAT64: {
      const double v = (double)g * 0.25 - (double)dtype;
      memcpy(out, &v, sizeof v);
      return;
    }
    case CAIRN_FLOAT16:
    case CAIRN_BFLOAT16: {
      const uint16_t v = (uint16_t)(0x3C00u + (uint16_t)(g % 256));
      memcpy(out, &v, sizeof v);
      return;
    }
    default: {
      const uint64_t v = (uint64_t)g * 2654435761u + (uint64_t)dtype * 977u + 1u;
      memcpy(out, &v, kDtypeSize[dtype]); /* little-endian low bytes */
      return;
    }
  }
}

static int all_ok(void) {
  int failures = 0;
  MPI_Allreduce(&g_failures, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  return failures == 0;
}

/* ---- 1. every dtype, saved on row blocks, loaded on column blocks ---- */

static void test_every_dtype_reshard(cairn_checkpointer* ck) {
  enum { NX = 7, NY = 5 };
  const int64_t global[2] = {NX, NY};
  int64_t r0, rc, c0, cc;
  split(NX, g_size, g_rank, &r0, &rc);
  split(NY, g_size, g_rank, &c0, &cc);
  unsigned char* saved[NUM_DTYPES];
  unsigned char* loaded[NUM_DTYPES];
  char path[1200];
  path_of(path, sizeof path, "dtypes");

  cairn_state* st = NULL;
  EXPECT_OK(cairn_state_create(&st));
  for (int d = 0; d < NUM_DTYPES; ++d) {
    const size_t es = kDtypeSize[d];
    saved[d] = malloc((size_t)(rc * NY) * es + 1);
    for (int64_t i = 0; i < rc; ++i)
      for (int64_t j = 0; j < NY; ++j) element(d, (r0 + i) * NY + j, saved[d] + (size_t)(i * NY + j) * es);
    char name[64];
    snprintf(name, sizeof name, "dtypes/a%d", d);
    const int64_t offset[2] = {r0, 0};
    const int64_t local[2] = {rc, NY};
    EXPECT_OK(cairn_state_add_array(st, name, (cairn_dtype)d, 2, global, offset, local, saved[d]));
  }
  /* A tiny array most ranks hold nothing of: empty chunks with NULL data are allowed. */
  int32_t tiny_saved[2] = {11, 22};
  {
    const int64_t g[1] = {2};
    const int64_t off[1] = {g_rank == 0 ? 0 : 2};
    const int64_t loc[1] = {g_rank == 0 ? 2 : 0};
    EXPECT_OK(cairn_state_add_array(st, "tiny", CAIRN_INT32, 1, g, off, loc, g_rank == 0 ? tiny_saved : NULL));
  }
  int64_t count = 0;
  EXPECT_OK(cairn_state_size(st, &count));
  CHECK(count == NUM_DTYPES + 1, "the state has %lld entries", (long long)count);
  EXPECT_OK(cairn_save(ck, st, path));
  EXPECT_OK(cairn_state_free(st));

  /* Load on column blocks, every rank reading into zeroed memory. */
  EXPECT_OK(cairn_state_create(&st));
  for (int d = 0; d < NUM_DTYPES; ++d) {
    const size_t es = kDtypeSize[d];
    loaded[d] = calloc((size_t)(NX * cc) * es + 1, 1);
    char name[64];
    snprintf(name, sizeof name, "dtypes/a%d", d);
    const int64_t offset[2] = {0, c0};
    const int64_t local[2] = {NX, cc};
    EXPECT_OK(cairn_state_add_array(st, name, (cairn_dtype)d, 2, global, offset, local, loaded[d]));
  }
  int32_t tiny_loaded[2] = {0, 0};
  {
    const int64_t g[1] = {2};
    const int64_t off[1] = {0};
    const int64_t loc[1] = {2};
    EXPECT_OK(cairn_state_add_array(st, "tiny", CAIRN_INT32, 1, g, off, loc, tiny_loaded));
  }
  EXPECT_OK(cairn_load(ck, st, path));
  EXPECT_OK(cairn_state_free(st));
  for (int d = 0; d < NUM_DTYPES; ++d) {
    const size_t es = kDtypeSize[d];
    int mismatches = 0;
    unsigned char want[8];
    for (int64_t i = 0; i < NX; ++i)
      for (int64_t j = 0; j < cc; ++j) {
        element(d, i * NY + (c0 + j), want);
        if (memcmp(loaded[d] + (size_t)(i * cc + j) * es, want, es) != 0) ++mismatches;
      }
    CHECK(mismatches == 0, "dtype %d: %d of %lld elements differ after a row-to-column reshard", d, mismatches,
          (long long)(NX * cc));
    free(saved[d]);
    free(loaded[d]);
  }
  CHECK(tiny_loaded[0] == 11 && tiny_loaded[1] == 22, "tiny = {%d, %d}", tiny_loaded[0], tiny_loaded[1]);
}

/* ---- 2. a column-major (Fortran-order) array, loaded row-major and column-major ---- */

static double f_value(int64_t i, int64_t j) {
  return (double)(i * 1000 + j);
}

static void test_column_major(cairn_checkpointer* ck) {
  enum { NX = 6, NY = 9 };
  const int64_t global[2] = {NX, NY};
  char path[1200];
  path_of(path, sizeof path, "colmajor");
  int64_t c0, cc, r0, rc;
  split(NY, g_size, g_rank, &c0, &cc);
  split(NX, g_size, g_rank, &r0, &rc);

  /* Fortran's a(NX, cc): element (i, j) at a[i + j * NX], global (i, c0 + j). */
  double* a = malloc(sizeof(double) * (size_t)(NX * cc) + 1);
  for (int64_t j = 0; j < cc; ++j)
    for (int64_t i = 0; i < NX; ++i) a[i + j * NX] = f_value(i, c0 + j);
  cairn_state* st = NULL;
  EXPECT_OK(cairn_state_create(&st));
  {
    const int64_t offset[2] = {0, c0};
    const int64_t local[2] = {NX, cc};
    EXPECT_OK(cairn_state_add_array_colmajor(st, "f", CAIRN_FLOAT64, 2, global, offset, local, a));
  }
  EXPECT_OK(cairn_save(ck, st, path));
  EXPECT_OK(cairn_state_free(st));

  /* Row-major rows r0..r0+rc: element (i, j) at b[i * NY + j] is global (r0 + i, j). */
  double* b = calloc((size_t)(rc * NY) + 1, sizeof(double));
  /* Column-major rows r0..r0+rc: element (i, j) at c[i + j * rc]. */
  double* c = calloc((size_t)(rc * NY) + 1, sizeof(double));
  EXPECT_OK(cairn_state_create(&st));
  {
    const int64_t offset[2] = {r0, 0};
    const int64_t local[2] = {rc, NY};
    EXPECT_OK(cairn_state_add_array(st, "f", CAIRN_FLOAT64, 2, global, offset, local, b));
  }
  EXPECT_OK(cairn_load(ck, st, path));
  EXPECT_OK(cairn_state_free(st));
  EXPECT_OK(cairn_state_create(&st));
  {
    const int64_t offset[2] = {r0, 0};
    const int64_t local[2] = {rc, NY};
    EXPECT_OK(cairn_state_add_array_colmajor(st, "f", CAIRN_FLOAT64, 2, global, offset, local, c));
  }
  EXPECT_OK(cairn_load(ck, st, path));
  EXPECT_OK(cairn_state_free(st));
  int bad_b = 0, bad_c = 0;
  for (int64_t i = 0; i < rc; ++i)
    for (int64_t j = 0; j < NY; ++j) {
      if (b[i * NY + j] != f_value(r0 + i, j)) ++bad_b;
      if (c[i + j * rc] != f_value(r0 + i, j)) ++bad_c;
    }
  CHECK(bad_b == 0, "%d elements of the column-major array loaded row-major differ", bad_b);
  CHECK(bad_c == 0, "%d elements of the column-major array loaded column-major differ", bad_c);
  free(a);
  free(b);
  free(c);
}

/* ---- 3. several chunks per rank and replicated arrays ---- */

static void test_chunks_and_replicated(cairn_checkpointer* ck) {
  const int64_t n = 4 * (int64_t)g_size;
  const int64_t global[1] = {n};
  char path[1200];
  path_of(path, sizeof path, "chunks");
  /* Rank p holds elements [2p, 2p+2) and [2 size + 2p, 2 size + 2p + 2). */
  int64_t first[2], second[2];
  for (int k = 0; k < 2; ++k) {
    first[k] = 1000 * (2 * g_rank + k);
    second[k] = 1000 * (2 * g_size + 2 * g_rank + k);
  }
  int32_t table[2][3] = {{1, 2, 3}, {4, 5, 6}};
  const int64_t table_shape[2] = {2, 3};
  cairn_state* st = NULL;
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_declare_array(st, "pieces", CAIRN_INT64, 1, global));
  {
    const int64_t off1[1] = {2 * g_rank}, off2[1] = {2 * g_size + 2 * g_rank}, two[1] = {2};
    EXPECT_OK(cairn_state_add_chunk(st, "pieces", 1, off1, two, first, CAIRN_ROW_MAJOR));
    EXPECT_OK(cairn_state_add_chunk(st, "pieces", 1, off2, two, second, CAIRN_ROW_MAJOR));
  }
  EXPECT_OK(cairn_state_add_replicated_array(st, "table", CAIRN_INT32, 2, table_shape, table, CAIRN_ROW_MAJOR));
  EXPECT_OK(cairn_save(ck, st, path));
  EXPECT_OK(cairn_state_free(st));

  /* Every rank loads the whole array, and the table. */
  int64_t* whole = calloc((size_t)n, sizeof(int64_t));
  int32_t table_back[2][3] = {{0}};
  EXPECT_OK(cairn_state_create(&st));
  {
    const int64_t zero[1] = {0};
    EXPECT_OK(cairn_state_add_array(st, "pieces", CAIRN_INT64, 1, global, zero, global, whole));
  }
  EXPECT_OK(cairn_state_add_replicated_array(st, "table", CAIRN_INT32, 2, table_shape, table_back, CAIRN_ROW_MAJOR));
  EXPECT_OK(cairn_load(ck, st, path));
  EXPECT_OK(cairn_state_free(st));
  int bad = 0;
  for (int64_t g = 0; g < n; ++g)
    if (whole[g] != 1000 * g) ++bad;
  CHECK(bad == 0, "%d of %lld elements of the two-chunks-per-rank array differ", bad, (long long)n);
  CHECK(memcmp(table, table_back, sizeof table) == 0, "the replicated table differs after load");
  free(whole);
}

/* ---- 4. scalars and blobs ---- */

static void test_scalars_and_bytes(cairn_checkpointer* ck) {
  char path[1200];
  path_of(path, sizeof path, "scalars");
  int64_t step = 42;
  double time = 3.5;
  char rng[32];
  memset(rng, 0, sizeof rng);
  snprintf(rng, sizeof rng, "rng state of rank %d", g_rank);
  unsigned char shared[16];
  for (int i = 0; i < 16; ++i) shared[i] = (unsigned char)(i * 13);
  cairn_state* st = NULL;
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_int64(st, "step", &step));
  EXPECT_OK(cairn_state_add_double(st, "time", &time));
  EXPECT_OK(cairn_state_add_bytes(st, "rng", rng, (int64_t)sizeof rng));
  EXPECT_OK(cairn_state_add_replicated_bytes(st, "shared", shared, (int64_t)sizeof shared));
  EXPECT_OK(cairn_save(ck, st, path));
  EXPECT_OK(cairn_state_free(st));

  int64_t step2 = 0;
  double time2 = 0;
  char rng2[32];
  unsigned char shared2[16];
  memset(rng2, 0, sizeof rng2);
  memset(shared2, 0, sizeof shared2);
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_int64(st, "step", &step2));
  EXPECT_OK(cairn_state_add_double(st, "time", &time2));
  EXPECT_OK(cairn_state_add_bytes(st, "rng", rng2, (int64_t)sizeof rng2));
  EXPECT_OK(cairn_state_add_replicated_bytes(st, "shared", shared2, (int64_t)sizeof shared2));
  EXPECT_OK(cairn_load(ck, st, path));
  EXPECT_OK(cairn_state_free(st));
  CHECK(step2 == 42, "step = %lld", (long long)step2);
  CHECK(time2 == 3.5, "time = %g", time2);
  CHECK(memcmp(rng, rng2, sizeof rng) == 0, "rank-local blob '%s', expected '%s'", rng2, rng);
  CHECK(memcmp(shared, shared2, sizeof shared) == 0, "the replicated blob differs");
}

/* ---- 5. asynchronous saves ---- */

static void test_async(cairn_checkpointer* ck) {
  enum { N = 1000 };
  const int64_t global[1] = {(int64_t)N * g_size};
  const int64_t offset[1] = {(int64_t)N * g_rank};
  const int64_t local[1] = {N};
  char path[1200];
  double* data = malloc(sizeof(double) * N);
  double* back = malloc(sizeof(double) * N);
  for (int i = 0; i < N; ++i) data[i] = g_rank * 1e6 + i;

  /* Save, then change the array at once: the checkpoint holds the values at async_save. */
  path_of(path, sizeof path, "async1");
  cairn_state* st = NULL;
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_array(st, "x", CAIRN_FLOAT64, 1, global, offset, local, data));
  cairn_request* req = NULL;
  EXPECT_OK(cairn_async_save(ck, st, path, &req));
  CHECK(req != NULL, "cairn_async_save gave no request");
  EXPECT_OK(cairn_state_free(st)); /* the state may go once async_save returned */
  for (int i = 0; i < N; ++i) data[i] = -1.0;
  int done = 0;
  for (int polls = 0; polls < 100000 && !done; ++polls) {
    EXPECT_OK(cairn_test(req, &done));
    if (!done) {
      const struct timespec pause = {0, 1000000};
      nanosleep(&pause, NULL);
    }
  }
  CHECK(done == 1, "cairn_test never reported the save done");
  EXPECT_OK(cairn_wait(req));

  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_array(st, "x", CAIRN_FLOAT64, 1, global, offset, local, back));
  EXPECT_OK(cairn_load(ck, st, path));
  EXPECT_OK(cairn_state_free(st));
  int bad = 0;
  for (int i = 0; i < N; ++i)
    if (back[i] != g_rank * 1e6 + i) ++bad;
  CHECK(bad == 0, "%d elements of the async save differ from the values at async_save", bad);

  /* cairn_wait straight away, then a second save reusing the staging memory. */
  for (int i = 0; i < N; ++i) data[i] = g_rank + i * 0.5;
  path_of(path, sizeof path, "async2");
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_array(st, "x", CAIRN_FLOAT64, 1, global, offset, local, data));
  req = NULL;
  EXPECT_OK(cairn_async_save(ck, st, path, &req));
  EXPECT_OK(cairn_wait(req));
  EXPECT_OK(cairn_state_free(st));
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_array(st, "x", CAIRN_FLOAT64, 1, global, offset, local, back));
  EXPECT_OK(cairn_load(ck, st, path));
  EXPECT_OK(cairn_state_free(st));
  CHECK(memcmp(back, data, sizeof(double) * N) == 0, "the second async save reads back different bytes");

  /* A save that fails (a chunk outside its array) is reported by cairn_wait, naming the entry. */
  path_of(path, sizeof path, "async_bad");
  EXPECT_OK(cairn_state_create(&st));
  {
    const int64_t beyond[1] = {(int64_t)N * g_size - 10};
    EXPECT_OK(cairn_state_add_array(st, "outside", CAIRN_FLOAT64, 1, global, beyond, local, data));
  }
  req = NULL;
  EXPECT_OK(cairn_async_save(ck, st, path, &req));
  EXPECT_ERROR(cairn_wait(req), CAIRN_ERR_USAGE, "cairn_wait", "outside", "async_bad");
  EXPECT_OK(cairn_state_free(st));
  struct stat info;
  CHECK(stat(path, &info) != 0, "the failed save published '%s'", path);
  free(data);
  free(back);
}

/* ---- 6. the checkpoint manager ---- */

static int exists(const char* root, const char* name) {
  char path[1400];
  snprintf(path, sizeof path, "%s/%s", root, name);
  struct stat info;
  return stat(path, &info) == 0;
}

/* A compressed array, and a manager saving incrementally into a node-local tier drained to its root. */
static void test_compression_tier_incremental(cairn_checkpointer* ck) {
  enum { N = 4096 };
  const int64_t global[1] = {(int64_t)N * g_size};
  const int64_t offset[1] = {(int64_t)N * g_rank};
  const int64_t local[1] = {N};
  static double data[N], back[N];
  for (int i = 0; i < N; ++i) data[i] = (double)((g_rank * N + i) / 64); /* runs of equal values */

  cairn_state* st = NULL;
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_array(st, "packed", CAIRN_FLOAT64, 1, global, offset, local, data));
  EXPECT_OK(cairn_state_set_compression(st, "packed", CAIRN_COMPRESSION_DEFLATE, 1));
  EXPECT_ERROR(cairn_state_set_compression(st, "absent", CAIRN_COMPRESSION_DEFLATE, 0), CAIRN_ERR_USAGE,
               "cairn_state_set_compression", "absent", "no array");
  EXPECT_ERROR(cairn_state_set_compression(st, "packed", (cairn_compression)7, 0), CAIRN_ERR_USAGE,
               "cairn_state_set_compression", "packed", "unknown compression method 7");
  char id[1200];
  path_of(id, sizeof id, "compressed");
  EXPECT_OK(cairn_save(ck, st, id));
  EXPECT_OK(cairn_state_free(st));
  EXPECT_OK(cairn_state_create(&st));
  memset(back, 0, sizeof back);
  EXPECT_OK(cairn_state_add_array(st, "packed", CAIRN_FLOAT64, 1, global, offset, local, back));
  EXPECT_OK(cairn_load(ck, st, id));
  CHECK(memcmp(back, data, sizeof back) == 0, "the deflate-compressed array reads back different bytes");
  EXPECT_OK(cairn_state_free(st));

  /* The node map is the ranks that share memory: here every rank is on node 0. */
  char root[1200], tier[1300];
  path_of(root, sizeof root, "tiered");
  snprintf(tier, sizeof tier, "%s_local/node{node}", root);
  cairn_manager_options options;
  EXPECT_OK(cairn_manager_options_init(&options));
  CHECK(options.local_root == NULL && options.partner_copies == 0 && options.incremental == 0 &&
            options.full_every == 10 && options.drain_bytes_per_second == 0,
        "unexpected tier/incremental defaults: full_every %d", options.full_every);
  options.local_root = tier;
  options.incremental = 1;
  cairn_manager* mgr = NULL;
  EXPECT_OK(cairn_manager_create_with_options(MPI_COMM_WORLD, root, &options, &mgr));
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_array(st, "packed", CAIRN_FLOAT64, 1, global, offset, local, data));
  EXPECT_OK(cairn_manager_save(mgr, st, 1));
  EXPECT_OK(cairn_manager_wait(mgr)); /* the drain to the root */
  EXPECT_OK(cairn_manager_free(mgr));
  EXPECT_OK(cairn_state_free(st));
  if (g_rank == 0) CHECK(exists(root, "step_0000000001"), "the drained checkpoint is not under %s", root);
  memset(back, 0, sizeof back);
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_array(st, "packed", CAIRN_FLOAT64, 1, global, offset, local, back));
  char drained[1300];
  snprintf(drained, sizeof drained, "%s/step_0000000001", root);
  EXPECT_OK(cairn_load(ck, st, drained));
  CHECK(memcmp(back, data, sizeof back) == 0, "the drained checkpoint reads back different bytes");
  EXPECT_OK(cairn_state_free(st));
}

static void test_manager(void) {
  enum { N = 50 };
  char root[1200];
  path_of(root, sizeof root, "managed");
  const int64_t global[1] = {(int64_t)N * g_size};
  const int64_t offset[1] = {(int64_t)N * g_rank};
  const int64_t local[1] = {N};
  double data[N];
  int64_t step = 0;

  cairn_manager_options defaults;
  memset(&defaults, 0xff, sizeof defaults);
  EXPECT_OK(cairn_manager_options_init(&defaults));
  CHECK(defaults.every_steps == 0 && defaults.every_seconds == 0 && defaults.keep_last == 3 &&
            defaults.keep_every == 0 && defaults.deep_check == 0 && defaults.zero_copy == 0,
        "unexpected defaults: every_steps %lld keep_last %d", (long long)defaults.every_steps, defaults.keep_last);

  cairn_manager* mgr = NULL;
  EXPECT_OK(cairn_manager_create(MPI_COMM_WORLD, root, 2, 2, &mgr));
  int64_t latest = -1;
  int found = -1;
  EXPECT_OK(cairn_manager_latest(mgr, &latest, &found));
  CHECK(found == 0 && latest == 0, "latest on an empty root: found %d, step %lld", found, (long long)latest);

  cairn_state* st = NULL;
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_array(st, "u", CAIRN_FLOAT64, 1, global, offset, local, data));
  EXPECT_OK(cairn_state_add_int64(st, "step", &step));
  for (step = 1; step <= 6; ++step) {
    for (int i = 0; i < N; ++i) data[i] = (double)(step * 100000 + g_rank * 1000 + i);
    int saved = -1;
    EXPECT_OK(cairn_manager_save_if_due(mgr, st, step, &saved));
    CHECK(saved == (step % 2 == 0), "step %lld: saved = %d", (long long)step, saved);
  }
  EXPECT_OK(cairn_manager_wait(mgr));
  EXPECT_OK(cairn_manager_latest(mgr, &latest, &found));
  CHECK(found == 1 && latest == 6, "latest: found %d, step %lld", found, (long long)latest);
  if (g_rank == 0) {
    CHECK(!exists(root, "step_0000000002"), "keep_last = 2 kept the checkpoint of step 2");
    CHECK(exists(root, "step_0000000004") && exists(root, "step_0000000006"),
          "the checkpoints of steps 4 and 6 are missing");
  }
  /* A forced save of a step that is not due. */
  step = 7;
  for (int i = 0; i < N; ++i) data[i] = (double)(7 * 100000 + g_rank * 1000 + i);
  EXPECT_OK(cairn_manager_save(mgr, st, 7));
  EXPECT_OK(cairn_manager_free(mgr));
  EXPECT_OK(cairn_state_free(st));

  /* A new manager (another run) restores step 7 into zeroed memory. */
  double back[N];
  memset(back, 0, sizeof back);
  int64_t saved_step = 0;
  cairn_manager_options options;
  EXPECT_OK(cairn_manager_options_init(&options));
  options.every_steps = 5;
  options.keep_last = 1;
  options.deep_check = 1;
  mgr = NULL;
  EXPECT_OK(cairn_manager_create_with_options(MPI_COMM_WORLD, root, &options, &mgr));
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_array(st, "u", CAIRN_FLOAT64, 1, global, offset, local, back));
  EXPECT_OK(cairn_state_add_int64(st, "step", &saved_step));
  int64_t from = -1;
  int restored = -1;
  EXPECT_OK(cairn_manager_restore_or_start(mgr, st, &from, &restored));
  CHECK(restored == 1 && from == 7, "restore_or_start: restored %d, step %lld", restored, (long long)from);
  CHECK(saved_step == 7, "the restored step scalar is %lld", (long long)saved_step);
  CHECK(memcmp(back, data, sizeof back) == 0, "the restored array differs from the one saved at step 7");
  EXPECT_OK(cairn_manager_free(mgr));
  EXPECT_OK(cairn_state_free(st));

  /* An empty root: start fresh. */
  path_of(root, sizeof root, "managed_empty");
  EXPECT_OK(cairn_manager_create(MPI_COMM_WORLD, root, 1, 1, &mgr));
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_array(st, "u", CAIRN_FLOAT64, 1, global, offset, local, back));
  from = -1;
  restored = -1;
  EXPECT_OK(cairn_manager_restore_or_start(mgr, st, &from, &restored));
  CHECK(restored == 0 && from == 0, "restore_or_start on an empty root: restored %d, step %lld", restored,
        (long long)from);
  EXPECT_OK(cairn_manager_free(mgr));
  EXPECT_OK(cairn_state_free(st));
  EXPECT_OK(cairn_manager_free(NULL));

  /* Near the wall-clock limit (a margin longer than the limit): should_exit saves step 12 first. */
  path_of(root, sizeof root, "managed_exit");
  EXPECT_OK(cairn_manager_options_init(&options));
  CHECK(options.mtbf_seconds == 0 && options.time_limit_seconds == 0 && options.exit_margin_seconds == 60,
        "unexpected defaults: mtbf %g limit %g margin %g", options.mtbf_seconds, options.time_limit_seconds,
        options.exit_margin_seconds);
  double left = -1;
  int known = -1;
  EXPECT_OK(cairn_manager_create_with_options(MPI_COMM_WORLD, root, &options, &mgr));
  EXPECT_OK(cairn_manager_time_left(mgr, &left, &known));
  CHECK(known == 0, "a time left is known without a limit: %g s", left);
  EXPECT_OK(cairn_manager_free(mgr));
  options.time_limit_seconds = 100;
  options.exit_margin_seconds = 1000;
  options.mtbf_seconds = 3600;
  EXPECT_OK(cairn_manager_create_with_options(MPI_COMM_WORLD, root, &options, &mgr));
  EXPECT_OK(cairn_manager_time_left(mgr, &left, &known));
  CHECK(known == 1 && left > 50 && left <= 100, "time left: known %d, %g s", known, left);
  double interval = -1;
  EXPECT_OK(cairn_manager_checkpoint_interval(mgr, &interval));
  CHECK(interval == 0, "an interval of %g s before any save", interval);
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_array(st, "u", CAIRN_FLOAT64, 1, global, offset, local, data));
  for (int i = 0; i < N; ++i) data[i] = (double)(12 * 100000 + g_rank * 1000 + i);
  int exit_now = -1;
  EXPECT_OK(cairn_manager_should_exit(mgr, st, 12, &exit_now));
  CHECK(exit_now == 1, "should_exit said %d with a margin beyond the limit", exit_now);
  EXPECT_OK(cairn_manager_latest(mgr, &latest, &found));
  CHECK(found == 1 && latest == 12, "after should_exit, latest: found %d, step %lld", found, (long long)latest);
  EXPECT_OK(cairn_manager_checkpoint_interval(mgr, &interval));
  CHECK(interval > 0, "no interval after a measured save with mtbf_seconds set: %g", interval);
  EXPECT_OK(cairn_manager_free(mgr));
  EXPECT_OK(cairn_state_free(st));

  /* A save that fails is reported once, by the call that waits for it, naming its step and entry. */
  path_of(root, sizeof root, "managed_failing");
  EXPECT_OK(cairn_manager_create(MPI_COMM_WORLD, root, 1, 1, &mgr));
  EXPECT_OK(cairn_state_create(&st));
  {
    const int64_t beyond[1] = {(int64_t)N * g_size - 1};
    EXPECT_OK(cairn_state_add_array(st, "bad_u", CAIRN_FLOAT64, 1, global, beyond, local, back));
  }
  int saved = -1;
  EXPECT_OK(cairn_manager_save_if_due(mgr, st, 1, &saved));
  CHECK(saved == 1, "save_if_due at step 1 with every_steps 1: saved = %d", saved);
  EXPECT_ERROR(cairn_manager_wait(mgr), CAIRN_ERR_USAGE, "cairn_manager_wait", "step 1", "bad_u");
  EXPECT_OK(cairn_manager_wait(mgr));
  EXPECT_OK(cairn_manager_latest(mgr, &latest, &found));
  CHECK(found == 0, "a failed save was published as step %lld", (long long)latest);
  EXPECT_OK(cairn_manager_free(mgr));
  EXPECT_OK(cairn_state_free(st));
}

/* ---- 7. error paths ---- */

static void damage_files(const char* dir) {
  /* Rank 0 overwrites the start of the checkpoint's data file: the HDF5 superblock is gone. */
  if (g_rank == 0) {
    char path[1400];
    snprintf(path, sizeof path, "%s/data.h5", dir);
    const int fd = open(path, O_WRONLY);
    CHECK(fd >= 0, "cannot open '%s' to damage it", path);
    if (fd >= 0) {
      unsigned char junk[4096];
      memset(junk, 0xAB, sizeof junk);
      CHECK(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk, "cannot damage '%s'", path);
      close(fd);
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

static void test_errors(cairn_checkpointer* ck) {
  const int64_t shape[2] = {4, 3};
  const int64_t zero[2] = {0, 0};
  double values[12] = {0};
  char path[1200];
  cairn_state* st = NULL;
  EXPECT_OK(cairn_state_create(&st));

  /* NULL handles and pointers name the argument. */
  EXPECT_ERROR(cairn_state_create(NULL), CAIRN_ERR_USAGE, "cairn_state_create", "'out'", NULL);
  EXPECT_ERROR(cairn_checkpointer_create(MPI_COMM_WORLD, NULL), CAIRN_ERR_USAGE, "cairn_checkpointer_create", "'out'",
               NULL);
  cairn_checkpointer* none = (cairn_checkpointer*)&none; /* must be reset to NULL on failure */
  EXPECT_ERROR(cairn_checkpointer_create(MPI_COMM_NULL, &none), CAIRN_ERR_USAGE, "cairn_checkpointer_create",
               "MPI_COMM_NULL", NULL);
  CHECK(none == NULL, "a failed cairn_checkpointer_create left *out set");
  EXPECT_ERROR(cairn_state_add_array(NULL, "a", CAIRN_FLOAT64, 2, shape, zero, shape, values), CAIRN_ERR_USAGE,
               "cairn_state_add_array", "'st'", NULL);
  EXPECT_ERROR(cairn_state_add_array(st, NULL, CAIRN_FLOAT64, 2, shape, zero, shape, values), CAIRN_ERR_USAGE,
               "cairn_state_add_array", "'name'", NULL);
  EXPECT_ERROR(cairn_state_add_array(st, "a", CAIRN_FLOAT64, 2, NULL, zero, shape, values), CAIRN_ERR_USAGE,
               "cairn_state_add_array", "'global_shape'", "entry 'a'");
  EXPECT_ERROR(cairn_state_add_array(st, "a", CAIRN_FLOAT64, 2, shape, NULL, shape, values), CAIRN_ERR_USAGE,
               "cairn_state_add_array", "'offset'", "entry 'a'");
  EXPECT_ERROR(cairn_state_add_array(st, "a", CAIRN_FLOAT64, 2, shape, zero, NULL, values), CAIRN_ERR_USAGE,
               "cairn_state_add_array", "'local_shape'", "entry 'a'");
  EXPECT_ERROR(cairn_state_add_array(st, "a", CAIRN_FLOAT64, 2, shape, zero, shape, NULL), CAIRN_ERR_USAGE,
               "cairn_state_add_array", "'data'", "entry 'a'");
  EXPECT_ERROR(cairn_save(NULL, st, "x"), CAIRN_ERR_USAGE, "cairn_save", "'ck'", NULL);
  EXPECT_ERROR(cairn_save(ck, NULL, "x"), CAIRN_ERR_USAGE, "cairn_save", "'st'", NULL);
  EXPECT_ERROR(cairn_save(ck, st, NULL), CAIRN_ERR_USAGE, "cairn_save", "'checkpoint_id'", NULL);
  EXPECT_ERROR(cairn_load(NULL, st, "x"), CAIRN_ERR_USAGE, "cairn_load", "'ck'", NULL);
  EXPECT_ERROR(cairn_load(ck, NULL, "x"), CAIRN_ERR_USAGE, "cairn_load", "'st'", NULL);
  cairn_request* req = (cairn_request*)&req;
  EXPECT_ERROR(cairn_async_save(NULL, st, "x", &req), CAIRN_ERR_USAGE, "cairn_async_save", "'ck'", NULL);
  CHECK(req == NULL, "a failed cairn_async_save left *out set");
  EXPECT_ERROR(cairn_async_save(ck, st, "x", NULL), CAIRN_ERR_USAGE, "cairn_async_save", "'out'", NULL);
  EXPECT_ERROR(cairn_wait(NULL), CAIRN_ERR_USAGE, "cairn_wait", "'req'", NULL);
  int done = -1;
  EXPECT_ERROR(cairn_test(NULL, &done), CAIRN_ERR_USAGE, "cairn_test", "'req'", NULL);
  EXPECT_ERROR(cairn_state_add_int64(st, "s", NULL), CAIRN_ERR_USAGE, "cairn_state_add_int64", "'value'", "'s'");
  EXPECT_ERROR(cairn_state_add_double(NULL, "s", NULL), CAIRN_ERR_USAGE, "cairn_state_add_double", "'st'", NULL);
  EXPECT_ERROR(cairn_state_add_bytes(st, "b", NULL, 4), CAIRN_ERR_USAGE, "cairn_state_add_bytes", "'data'", "'b'");
  EXPECT_ERROR(cairn_state_add_bytes(st, "b", values, -1), CAIRN_ERR_USAGE, "cairn_state_add_bytes", "negative", "'b'");
  EXPECT_ERROR(cairn_state_size(st, NULL), CAIRN_ERR_USAGE, "cairn_state_size", "'count'", NULL);
  EXPECT_ERROR(cairn_checkpointer_set_overwrite(NULL, 1), CAIRN_ERR_USAGE, "cairn_checkpointer_set_overwrite", "'ck'",
               NULL);
  EXPECT_ERROR(cairn_manager_options_init(NULL), CAIRN_ERR_USAGE, "cairn_manager_options_init", "'options'", NULL);
  EXPECT_ERROR(cairn_manager_save_if_due(NULL, st, 1, NULL), CAIRN_ERR_USAGE, "cairn_manager_save_if_due", "'mgr'",
               NULL);
  EXPECT_ERROR(cairn_manager_wait(NULL), CAIRN_ERR_USAGE, "cairn_manager_wait", "'mgr'", NULL);
  int64_t step = 0;
  int flag = 0;
  EXPECT_ERROR(cairn_manager_latest(NULL, &step, &flag), CAIRN_ERR_USAGE, "cairn_manager_latest", "'mgr'", NULL);
  EXPECT_ERROR(cairn_manager_restore_or_start(NULL, st, &step, &flag), CAIRN_ERR_USAGE,
               "cairn_manager_restore_or_start", "'mgr'", NULL);

  /* Bad dtype, ndim, extents, layout, duplicate names, unknown arrays. */
  EXPECT_ERROR(cairn_state_add_array(st, "a", (cairn_dtype)42, 2, shape, zero, shape, values), CAIRN_ERR_USAGE,
               "cairn_state_add_array", "dtype 42", "entry 'a'");
  EXPECT_ERROR(cairn_state_add_array(st, "a", (cairn_dtype)-1, 2, shape, zero, shape, values), CAIRN_ERR_USAGE,
               "cairn_state_add_array", "dtype -1", "entry 'a'");
  EXPECT_ERROR(cairn_state_add_array(st, "a", CAIRN_FLOAT64, 0, shape, zero, shape, values), CAIRN_ERR_USAGE,
               "cairn_state_add_array", "ndim is 0", "entry 'a'");
  EXPECT_ERROR(cairn_state_add_array_colmajor(st, "a", CAIRN_FLOAT64, 33, shape, zero, shape, values), CAIRN_ERR_USAGE,
               "cairn_state_add_array_colmajor", "ndim is 33", "entry 'a'");
  {
    const int64_t negative[2] = {4, -3};
    EXPECT_ERROR(cairn_state_add_array(st, "a", CAIRN_FLOAT64, 2, negative, zero, shape, values), CAIRN_ERR_USAGE,
                 "cairn_state_add_array", "global_shape[1] is negative", "entry 'a'");
  }
  EXPECT_ERROR(cairn_state_add_replicated_array(st, "r", CAIRN_FLOAT64, 2, shape, values, (cairn_layout)7),
               CAIRN_ERR_USAGE, "cairn_state_add_replicated_array", "layout 7", "entry 'r'");
  int64_t count = -1;
  EXPECT_OK(cairn_state_size(st, &count));
  CHECK(count == 0, "failed calls added %lld entries to the state", (long long)count);
  EXPECT_OK(cairn_state_add_array(st, "a", CAIRN_FLOAT64, 2, shape, zero, shape, values));
  EXPECT_ERROR(cairn_state_add_double(st, "a", &values[0]), CAIRN_ERR_USAGE, "cairn_state_add_double", "entry 'a'",
               "already has an entry");
  EXPECT_ERROR(cairn_state_add_chunk(st, "nope", 2, zero, shape, values, CAIRN_ROW_MAJOR), CAIRN_ERR_USAGE,
               "cairn_state_add_chunk", "entry 'nope'", "no array");
  EXPECT_ERROR(cairn_state_add_chunk(st, "a", 1, zero, shape, values, CAIRN_ROW_MAJOR), CAIRN_ERR_USAGE,
               "cairn_state_add_chunk", "entry 'a'", "ndim is 1");
  EXPECT_OK(cairn_state_free(st));

  /* A good checkpoint to load from with mismatching states. */
  path_of(path, sizeof path, "errors_good");
  for (int i = 0; i < 12; ++i) values[i] = i;
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_replicated_array(st, "grid", CAIRN_FLOAT64, 2, shape, values, CAIRN_ROW_MAJOR));
  EXPECT_OK(cairn_save(ck, st, path));
  /* Saving onto an existing id fails unless overwrite is set. */
  EXPECT_ERROR(cairn_save(ck, st, path), CAIRN_ERR_USAGE, "cairn_save", "errors_good", NULL);
  EXPECT_OK(cairn_checkpointer_set_overwrite(ck, 1));
  values[0] = 100;
  EXPECT_OK(cairn_save(ck, st, path));
  EXPECT_OK(cairn_checkpointer_set_overwrite(ck, 0));
  EXPECT_OK(cairn_state_free(st));

  double back[12] = {0};
  EXPECT_OK(cairn_state_create(&st));
  EXPECT_OK(cairn_state_add_replicated_array(st, "grid", CAIRN_FLOAT64, 2, shape, back, CAIRN_ROW_MAJOR));
  EXPECT_OK(cairn_load(ck, st, path));
  CHECK(memcmp(back, values, sizeof back) == 0, "the overwritten checkpoint does not hold the new values");
  EXPECT_OK(cairn_state_free(st));

  /* Shape mismatch on load. */
  {
    const int64_t other[2] = {3, 4};
    EXPECT_OK(cairn_state_create(&st));
    EXPECT_OK(cairn_state_add_replicated_array(st, "grid", CAIRN_FLOAT64, 2, other, back, CAIRN_ROW_MAJOR));
    EXPECT_ERROR(cairn_load(ck, st, path), CAIRN_ERR_USAGE, "cairn_load", "grid", "shape");
    EXPECT_OK(cairn_state_free(st));
  }
  /* Dtype mismatch (float64 cannot become int8 losslessly). */
  {
    int8_t small[12];
    EXPECT_OK(cairn_state_create(&st));
    EXPECT_OK(cairn_state_add_replicated_array(st, "grid", CAIRN_INT8, 2, shape, small, CAIRN_ROW_MAJOR));
    EXPECT_ERROR(cairn_load(ck, st, path), CAIRN_ERR_USAGE, "cairn_load", "grid", "int8");
    EXPECT_OK(cairn_state_free(st));
  }
  /* An entry the checkpoint does not have. */
  {
    int64_t missing = 0;
    EXPECT_OK(cairn_state_create(&st));
    EXPECT_OK(cairn_state_add_int64(st, "no_such_entry", &missing));
    EXPECT_ERROR(cairn_load(ck, st, path), CAIRN_ERR_USAGE, "cairn_load", "no_such_entry", NULL);
    EXPECT_OK(cairn_state_free(st));
  }
  /* Invalid names and chunks are refused at save, naming the entry; nothing is published. */
  {
    char bad_path[1200];
    path_of(bad_path, sizeof bad_path, "errors_bad_name");
    EXPECT_OK(cairn_state_create(&st));
    EXPECT_OK(cairn_state_add_replicated_array(st, "a//b", CAIRN_FLOAT64, 2, shape, values, CAIRN_ROW_MAJOR));
    EXPECT_ERROR(cairn_save(ck, st, bad_path), CAIRN_ERR_USAGE, "cairn_save", "a//b", NULL);
    EXPECT_OK(cairn_state_free(st));
    const int64_t outside[2] = {3, 0};
    EXPECT_OK(cairn_state_create(&st));
    EXPECT_OK(cairn_state_add_array(st, "clipped", CAIRN_FLOAT64, 2, shape, outside, shape, values));
    EXPECT_ERROR(cairn_save(ck, st, bad_path), CAIRN_ERR_USAGE, "cairn_save", "clipped", NULL);
    EXPECT_OK(cairn_state_free(st));
    struct stat info;
    CHECK(stat(bad_path, &info) != 0, "a failed save published '%s'", bad_path);
  }
  /* A missing checkpoint. */
  {
    char missing_path[1200];
    path_of(missing_path, sizeof missing_path, "never_saved");
    EXPECT_OK(cairn_state_create(&st));
    EXPECT_OK(cairn_state_add_replicated_array(st, "grid", CAIRN_FLOAT64, 2, shape, back, CAIRN_ROW_MAJOR));
    EXPECT_ERROR(cairn_load(ck, st, missing_path), CAIRN_ERR_STORAGE, "cairn_load", "never_saved", NULL);
    EXPECT_OK(cairn_state_free(st));
  }
  /* A damaged checkpoint. */
  {
    char damaged[1200];
    path_of(damaged, sizeof damaged, "errors_damaged");
    EXPECT_OK(cairn_state_create(&st));
    EXPECT_OK(cairn_state_add_replicated_array(st, "grid", CAIRN_FLOAT64, 2, shape, values, CAIRN_ROW_MAJOR));
    EXPECT_OK(cairn_save(ck, st, damaged));
    EXPECT_OK(cairn_state_free(st));
    damage_files(damaged);
    EXPECT_OK(cairn_state_create(&st));
    EXPECT_OK(cairn_state_add_replicated_array(st, "grid", CAIRN_FLOAT64, 2, shape, back, CAIRN_ROW_MAJOR));
    EXPECT_ERROR(cairn_load(ck, st, damaged), CAIRN_ERR_CORRUPT, "cairn_load", "errors_damaged", NULL);
    EXPECT_OK(cairn_state_free(st));
  }
  /* Manager options out of range. */
  {
    char root[1200];
    path_of(root, sizeof root, "bad_manager");
    cairn_manager* mgr = (cairn_manager*)&mgr;
    EXPECT_ERROR(cairn_manager_create(MPI_COMM_WORLD, root, 1, 0, &mgr), CAIRN_ERR_USAGE, "cairn_manager_create",
                 "keep_last", NULL);
    CHECK(mgr == NULL, "a failed cairn_manager_create left *out set");
    EXPECT_ERROR(cairn_manager_create(MPI_COMM_WORLD, root, -5, 1, &mgr), CAIRN_ERR_USAGE, "cairn_manager_create",
                 "every_steps", NULL);
    EXPECT_ERROR(cairn_manager_create(MPI_COMM_WORLD, NULL, 1, 1, &mgr), CAIRN_ERR_USAGE, "cairn_manager_create",
                 "'root'", NULL);
  }
  /* Success clears the message. */
  int rank = -1;
  EXPECT_OK(cairn_checkpointer_rank(ck, &rank));
  CHECK(rank == g_rank, "cairn_checkpointer_rank gave %d", rank);
  CHECK(cairn_last_error()[0] == '\0', "the message after a success is '%s'", cairn_last_error());
  CHECK(cairn_checkpointer_free(NULL) == CAIRN_SUCCESS, "freeing a NULL checkpointer failed");
  CHECK(cairn_state_free(NULL) == CAIRN_SUCCESS, "freeing a NULL state failed");
}

/* ---- driver ---- */

static void remove_tree(const char* dir) {
  if (g_rank != 0) return;
  char command[1200];
  snprintf(command, sizeof command, "rm -rf '%s'", dir);
  if (system(command) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  /* CAIRN_TEST_MPI_THREAD_LEVEL=funneled: below MPI_THREAD_MULTIPLE, saves are written inside
   * cairn_test()/cairn_wait() on the calling thread, collectively. */
  const char* level = getenv("CAIRN_TEST_MPI_THREAD_LEVEL");
  const int wanted = level != NULL && strcmp(level, "funneled") == 0 ? MPI_THREAD_FUNNELED : MPI_THREAD_MULTIPLE;
  int provided = 0;
  MPI_Init_thread(&argc, &argv, wanted, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);

  /* Every run gets its own directory, so that ctest -j works. */
  if (g_rank == 0) {
    const char* tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/cairn_capi_XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(g_dir) == NULL) {
      perror("mkdtemp");
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
  }
  MPI_Bcast(g_dir, (int)sizeof g_dir, MPI_CHAR, 0, MPI_COMM_WORLD);

  const char* version = cairn_version();
  CHECK(version != NULL && strchr(version, '.') != NULL, "cairn_version() = '%s'", version ? version : "(null)");

  cairn_checkpointer* ck = NULL;
  EXPECT_OK(cairn_checkpointer_create(MPI_COMM_WORLD, &ck));
  if (ck == NULL) MPI_Abort(MPI_COMM_WORLD, 3);
  {
    /* The Fortran entry point takes the communicator's Fortran handle. */
    cairn_checkpointer* from_fortran = NULL;
    EXPECT_OK(cairn_checkpointer_create_f(MPI_Comm_c2f(MPI_COMM_WORLD), &from_fortran));
    CHECK(from_fortran != NULL, "cairn_checkpointer_create_f gave no checkpointer");
    EXPECT_OK(cairn_checkpointer_free(from_fortran));
  }

  test_every_dtype_reshard(ck);
  test_column_major(ck);
  test_chunks_and_replicated(ck);
  test_scalars_and_bytes(ck);
  test_async(ck);
  test_manager();
  test_compression_tier_incremental(ck);
  test_errors(ck);
  EXPECT_OK(cairn_checkpointer_free(ck));

  const int ok = all_ok();
  if (ok) remove_tree(g_dir);
  if (g_rank == 0 && ok) printf("PASS: C API on %d ranks, MPI thread level %d\n", g_size, provided);
  if (g_rank == 0 && !ok)
    printf("FAIL: C API on %d ranks, MPI thread level %d (files in %s)\n", g_size, provided, g_dir);
  MPI_Finalize();
  return ok ? 0 : 1;
}
