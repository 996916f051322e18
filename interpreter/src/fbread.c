/* Checked flatbuffer reading; see fbread.h. Reads go through memcpy, so neither alignment
 * nor the host's byte order matters beyond little-endian (which flatbuffers mandates). */
#include "fbread.h"

#include <stdio.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .ember reader assumes a little-endian host"
#endif

void fb_init(FbReader *r, const void *buf, size_t size) {
  r->buf = buf;
  r->size = size;
  r->failed = false;
  r->error[0] = '\0';
}

bool fb_fail(FbReader *r, size_t offset, const char *what) {
  if (!r->failed) {
    r->failed = true;
    snprintf(r->error, sizeof r->error, "at file offset %zu: %s", offset, what);
  }
  return false;
}

/* true when [pos, pos + n) lies inside the buffer. */
static bool in_bounds(const FbReader *r, size_t pos, size_t n) {
  return pos <= r->size && n <= r->size - pos;
}

static uint16_t rd16(const FbReader *r, size_t p) { uint16_t v; memcpy(&v, r->buf + p, 2); return v; }
static uint32_t rd32(const FbReader *r, size_t p) { uint32_t v; memcpy(&v, r->buf + p, 4); return v; }
static uint64_t rd64(const FbReader *r, size_t p) { uint64_t v; memcpy(&v, r->buf + p, 8); return v; }

static bool table_at(FbReader *r, size_t pos, FbTable *t) {
  memset(t, 0, sizeof *t);
  if (r->failed) return false;
  if (!in_bounds(r, pos, 4)) return fb_fail(r, pos, "table outside the file");
  int64_t vt = (int64_t)pos - (int64_t)(int32_t)rd32(r, pos);
  if (vt < 0 || !in_bounds(r, (size_t)vt, 4)) return fb_fail(r, pos, "table's vtable outside the file");
  uint16_t vsize = rd16(r, (size_t)vt), tsize = rd16(r, (size_t)vt + 2);
  if (vsize < 4 || (vsize & 1) || !in_bounds(r, (size_t)vt, vsize))
    return fb_fail(r, (size_t)vt, "malformed vtable");
  if (tsize < 4 || !in_bounds(r, pos, tsize)) return fb_fail(r, pos, "table runs past the file");
  t->pos = pos;
  t->vtable = (size_t)vt;
  t->vtable_size = vsize;
  t->table_size = tsize;
  return true;
}

bool fb_root(FbReader *r, const char identifier[4], FbTable *root) {
  memset(root, 0, sizeof *root);
  if (!in_bounds(r, 0, 8)) return fb_fail(r, 0, "file too small to be a model");
  if (memcmp(r->buf + 4, identifier, 4) != 0)
    return fb_fail(r, 4, "not an .ember file (identifier is not EMBR)");
  return table_at(r, rd32(r, 0), root);
}

/* Absolute position of a present field of `width` bytes, or 0 when absent. */
static size_t field_pos(FbReader *r, const FbTable *t, int field, size_t width) {
  if (r->failed || t->pos == 0) return 0;
  size_t entry = 4 + 2 * (size_t)field;
  if (entry + 2 > t->vtable_size) return 0;
  uint16_t off = rd16(r, t->vtable + entry);
  if (off == 0) return 0;
  if (off < 4 || (size_t)off + width > t->table_size) {
    fb_fail(r, t->pos, "field outside its table");
    return 0;
  }
  return t->pos + off;
}

bool fb_has(FbReader *r, const FbTable *t, int field) { return field_pos(r, t, field, 1) != 0; }

uint8_t fb_u8(FbReader *r, const FbTable *t, int field, uint8_t def) {
  size_t p = field_pos(r, t, field, 1);
  return p ? r->buf[p] : def;
}
int8_t fb_i8(FbReader *r, const FbTable *t, int field, int8_t def) {
  size_t p = field_pos(r, t, field, 1);
  int8_t v = def;
  if (p) memcpy(&v, r->buf + p, 1);
  return v;
}
uint16_t fb_u16(FbReader *r, const FbTable *t, int field, uint16_t def) {
  size_t p = field_pos(r, t, field, 2);
  return p ? rd16(r, p) : def;
}
int32_t fb_i32(FbReader *r, const FbTable *t, int field, int32_t def) {
  size_t p = field_pos(r, t, field, 4);
  return p ? (int32_t)rd32(r, p) : def;
}
uint32_t fb_u32(FbReader *r, const FbTable *t, int field, uint32_t def) {
  size_t p = field_pos(r, t, field, 4);
  return p ? rd32(r, p) : def;
}
uint64_t fb_u64(FbReader *r, const FbTable *t, int field, uint64_t def) {
  size_t p = field_pos(r, t, field, 8);
  return p ? rd64(r, p) : def;
}
float fb_f32(FbReader *r, const FbTable *t, int field, float def) {
  size_t p = field_pos(r, t, field, 4);
  float v = def;
  if (p) memcpy(&v, r->buf + p, 4);
  return v;
}

/* Follows the uoffset stored at field; 0 when absent. */
static size_t deref(FbReader *r, const FbTable *t, int field) {
  size_t p = field_pos(r, t, field, 4);
  if (!p) return 0;
  uint64_t target = (uint64_t)p + rd32(r, p);
  if (target >= r->size) {
    fb_fail(r, p, "reference outside the file");
    return 0;
  }
  return (size_t)target;
}

bool fb_table(FbReader *r, const FbTable *t, int field, FbTable *out) {
  memset(out, 0, sizeof *out);
  size_t target = deref(r, t, field);
  if (!target) return !r->failed;
  return table_at(r, target, out);
}

static bool vector_at(FbReader *r, size_t pos, size_t elem_size, FbVector *out) {
  if (!in_bounds(r, pos, 4)) return fb_fail(r, pos, "vector outside the file");
  uint32_t len = rd32(r, pos);
  if ((uint64_t)len * elem_size > r->size - pos - 4)
    return fb_fail(r, pos, "vector runs past the end of the file");
  out->pos = pos + 4;
  out->len = len;
  return true;
}

bool fb_vector(FbReader *r, const FbTable *t, int field, size_t elem_size, FbVector *out) {
  out->pos = 0;
  out->len = 0;
  size_t target = deref(r, t, field);
  if (!target) return !r->failed;
  return vector_at(r, target, elem_size, out);
}

const char *fb_string(FbReader *r, const FbTable *t, int field) {
  FbVector v;
  if (!fb_vector(r, t, field, 1, &v) || v.pos == 0) return "";
  if (!in_bounds(r, v.pos + v.len, 1) || r->buf[v.pos + v.len] != '\0') {
    fb_fail(r, v.pos, "string is not NUL-terminated inside the file");
    return "";
  }
  return (const char *)r->buf + v.pos;
}

int32_t fb_vec_i32(const FbReader *r, const FbVector *v, uint32_t i) {
  return (int32_t)rd32(r, v->pos + 4 * (size_t)i);
}
int64_t fb_vec_i64(const FbReader *r, const FbVector *v, uint32_t i) {
  return (int64_t)rd64(r, v->pos + 8 * (size_t)i);
}
float fb_vec_f32(const FbReader *r, const FbVector *v, uint32_t i) {
  float f;
  memcpy(&f, r->buf + v->pos + 4 * (size_t)i, 4);
  return f;
}
bool fb_vec_table(FbReader *r, const FbVector *v, uint32_t i, FbTable *out) {
  size_t p = v->pos + 4 * (size_t)i;
  uint64_t target = (uint64_t)p + rd32(r, p);
  if (target >= r->size) {
    memset(out, 0, sizeof *out);
    return fb_fail(r, p, "reference outside the file");
  }
  return table_at(r, (size_t)target, out);
}
