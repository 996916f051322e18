/* Arena planning: place every activation tensor (and kernel scratch) in one buffer.
 *
 * Greedy by size (the largest items first, as TFLite's arena planner does): each item goes
 * to the lowest aligned offset where it overlaps no already-placed item whose lifetime
 * overlaps its own. Items that are never live at the same time share bytes.
 */
#include <stdlib.h>

#include "internal.h"

/* Pointers into the caller's items, sorted largest first (ties: earlier first, then index,
 * so the same input always gives the same plan). */
static int by_size_desc(const void *a, const void *b) {
  const EmberPlanItem *x = *(const EmberPlanItem *const *)a, *y = *(const EmberPlanItem *const *)b;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  if (x->first != y->first) return x->first < y->first ? -1 : 1;
  return x < y ? -1 : x > y;
}

static int by_offset(const void *a, const void *b) {
  const EmberPlanItem *x = *(const EmberPlanItem *const *)a, *y = *(const EmberPlanItem *const *)b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

EmberStatus ember_plan_arena(EmberPlanItem *items, int n, size_t alignment, size_t *arena_size) {
  *arena_size = 0;
  if (n <= 0) return EMBER_OK;
  EmberPlanItem **order = malloc((size_t)n * sizeof *order);
  const EmberPlanItem **live = malloc((size_t)n * sizeof *live);
  if (!order || !live) {
    free(order);
    free(live);
    return EMBER_ERROR_OUT_OF_MEMORY;
  }
  for (int i = 0; i < n; i++) order[i] = &items[i];
  qsort(order, (size_t)n, sizeof *order, by_size_desc);

  size_t total = 0;
  for (int k = 0; k < n; k++) {
    EmberPlanItem *it = order[k];
    int nlive = 0;
    for (int j = 0; j < k; j++) {
      const EmberPlanItem *other = order[j];
      if (other->size && other->first <= it->last && it->first <= other->last)
        live[nlive++] = other;
    }
    qsort(live, (size_t)nlive, sizeof *live, by_offset);
    size_t offset = 0;
    for (int j = 0; j < nlive && it->size; j++) {
      if (offset + it->size <= live[j]->offset) break;
      size_t end = align_up(live[j]->offset + live[j]->size, alignment);
      if (end > offset) offset = end;
    }
    it->offset = offset;
    if (offset + it->size > total) total = offset + it->size;
  }
  free(order);
  free(live);
  *arena_size = align_up(total, alignment);
  return EMBER_OK;
}
