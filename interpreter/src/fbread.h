/* A small checked reader for the flatbuffer bytes of a .ember file.
 *
 * Every access checks its offsets and lengths against the buffer before it reads; on the
 * first failure the reader records a message naming the file offset, and every later access
 * returns a default. The loader reads all it needs once, then checks `failed`.
 */
#ifndef EMBER_FBREAD_H
#define EMBER_FBREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct FbReader {
  const uint8_t *buf;
  size_t size;
  bool failed;
  char error[256];
} FbReader;

typedef struct FbTable {
  size_t pos;      /* table start; 0 = absent */
  size_t vtable;
  uint16_t vtable_size, table_size;
} FbTable;

typedef struct FbVector {
  size_t pos;      /* first element */
  uint32_t len;    /* 0 when absent */
} FbVector;

void fb_init(FbReader *r, const void *buf, size_t size);
/* Sets the reader's error (first one wins) and returns false. */
bool fb_fail(FbReader *r, size_t offset, const char *what);
/* The root table, after checking the 4-byte identifier at offset 4. */
bool fb_root(FbReader *r, const char identifier[4], FbTable *root);

bool fb_has(FbReader *r, const FbTable *t, int field);
uint8_t fb_u8(FbReader *r, const FbTable *t, int field, uint8_t def);
int8_t fb_i8(FbReader *r, const FbTable *t, int field, int8_t def);
uint16_t fb_u16(FbReader *r, const FbTable *t, int field, uint16_t def);
int32_t fb_i32(FbReader *r, const FbTable *t, int field, int32_t def);
uint32_t fb_u32(FbReader *r, const FbTable *t, int field, uint32_t def);
uint64_t fb_u64(FbReader *r, const FbTable *t, int field, uint64_t def);
float fb_f32(FbReader *r, const FbTable *t, int field, float def);
/* A sub-table; an absent field gives t->pos == 0 (not a failure). */
bool fb_table(FbReader *r, const FbTable *t, int field, FbTable *out);
/* A vector of elem_size-byte elements; absent gives len 0. */
bool fb_vector(FbReader *r, const FbTable *t, int field, size_t elem_size, FbVector *out);
/* A NUL-terminated string inside the buffer; "" when absent or on failure. */
const char *fb_string(FbReader *r, const FbTable *t, int field);

/* Elements of a checked vector (i < v->len). */
int32_t fb_vec_i32(const FbReader *r, const FbVector *v, uint32_t i);
int64_t fb_vec_i64(const FbReader *r, const FbVector *v, uint32_t i);
float fb_vec_f32(const FbReader *r, const FbVector *v, uint32_t i);
bool fb_vec_table(FbReader *r, const FbVector *v, uint32_t i, FbTable *out);

#endif
