#!/usr/bin/env python3
"""Generate include/rtgc/sizeclasses.h: the allocator's size-class tables.

Usage:
    python3 tools/mksizeclasses.py > include/rtgc/sizeclasses.h
    python3 tools/mksizeclasses.py include/rtgc/sizeclasses.h

The table is Go's (unchanged from Go 1.19 through 1.25), derived here from
the rules described in /work/shared/reference/go-runtime-notes.md section 1.2:

  * Candidate object sizes run upward from 8 in steps of an alignment that is
    raised whenever the candidate is a power of two: 8 below 32, 16 from 32,
    size/8 from 128 (16, 32, 64, 128), 256 from 2048.
  * Each candidate gets the fewest 8 KiB pages whose tail waste
    (span bytes % size) is at most span bytes / 8.
  * A candidate with the same page count and the same objects per span as the
    previous class replaces that class's size instead of adding a class.
  * Afterwards every class is widened to floor(span bytes / objects) rounded
    down to a multiple of 128, when that is larger.
  * There must be exactly 68 classes, counting the reserved class 0.

For every class it also computes divMul = floor((2^32 - 1) / size) + 1 and
checks by brute force that (n * divMul) >> 32 == n // size for every byte
offset n in [0, npages * 8192].  Any failed check aborts without output.

Python 3 standard library only.
"""

import sys

PAGE_SHIFT = 13
PAGE_SIZE = 1 << PAGE_SHIFT
MAX_SMALL_SIZE = 32768
SMALL_SIZE_DIV = 8
SMALL_SIZE_MAX = 1024
LARGE_SIZE_DIV = 128
NUM_SIZE_CLASSES = 68
TINY_SIZE = 16
MIN_ALIGN = 8


def is_pow2(x):
    return x > 0 and (x & (x - 1)) == 0


def span_pages(size):
    """Fewest pages whose tail waste is at most 1/8 of the span."""
    span = PAGE_SIZE
    while span % size > span // 8:
        span += PAGE_SIZE
    return span // PAGE_SIZE


def make_classes():
    """Return a list of [size, npages]; index 0 is the reserved large class."""
    classes = [[0, 0]]
    align = MIN_ALIGN
    size = align
    while size <= MAX_SMALL_SIZE:
        if is_pow2(size):
            if size >= 2048:
                align = 256
            elif size >= 128:
                align = size // 8
            elif size >= 32:
                align = 16
        if not is_pow2(align):
            raise SystemExit("mksizeclasses: alignment %d is not a power of two" % align)

        npages = span_pages(size)
        span = npages * PAGE_SIZE
        if len(classes) > 1:
            prev = classes[-1]
            if prev[1] == npages and span // prev[0] == span // size:
                prev[0] = size  # same span, same count: the bigger size is free
                size += align
                continue
        classes.append([size, npages])
        size += align

    for c in classes[1:]:
        span = c[1] * PAGE_SIZE
        widened = (span // (span // c[0])) & ~(LARGE_SIZE_DIV - 1)
        if widened > c[0]:
            c[0] = widened

    if len(classes) != NUM_SIZE_CLASSES:
        raise SystemExit("mksizeclasses: got %d size classes, want %d"
                         % (len(classes), NUM_SIZE_CLASSES))
    return classes


def div_magic(size, npages):
    """divMul for one class, verified for every offset in the span."""
    if size == 0:
        return 0
    mul = (2**32 - 1) // size + 1
    if mul >= 2**32:
        raise SystemExit("mksizeclasses: divMul for size %d does not fit 32 bits" % size)
    for n in range(npages * PAGE_SIZE + 1):
        if (n * mul) >> 32 != n // size:
            raise SystemExit("mksizeclasses: divMul 0x%08x wrong for size %d at offset %d"
                             % (mul, size, n))
    return mul


def check(classes):
    sizes = [c[0] for c in classes]
    for i in range(1, len(classes)):
        size, npages = classes[i]
        span = npages * PAGE_SIZE
        if i > 1 and size <= sizes[i - 1]:
            raise SystemExit("mksizeclasses: sizes not increasing at class %d" % i)
        if span % size > span // 8:
            raise SystemExit("mksizeclasses: class %d wastes more than 1/8 of its span" % i)
        if size > SMALL_SIZE_MAX and size % LARGE_SIZE_DIV != 0:
            # The 128-byte lookup table needs class boundaries above 1024 on
            # multiples of 128.
            raise SystemExit("mksizeclasses: class %d (%d B) is not a multiple of %d"
                             % (i, size, LARGE_SIZE_DIV))
        if size <= 512 and npages != 1:
            raise SystemExit("mksizeclasses: class %d (%d B) is not one page" % (i, size))
        if npages > 255:
            raise SystemExit("mksizeclasses: class %d needs too many pages" % i)
    if sizes[-1] != MAX_SMALL_SIZE:
        raise SystemExit("mksizeclasses: last class is %d, want %d" % (sizes[-1], MAX_SMALL_SIZE))
    if sizes[2] != TINY_SIZE:
        raise SystemExit("mksizeclasses: class 2 is %d, want the tiny size %d" % (sizes[2], TINY_SIZE))


def smallest_class(classes, need):
    for i in range(1, len(classes)):
        if classes[i][0] >= need:
            return i
    raise SystemExit("mksizeclasses: no class holds %d bytes" % need)


def lookup_tables(classes):
    t8 = [0] + [smallest_class(classes, i * SMALL_SIZE_DIV)
                for i in range(1, SMALL_SIZE_MAX // SMALL_SIZE_DIV + 1)]
    t128 = [smallest_class(classes, SMALL_SIZE_MAX + i * LARGE_SIZE_DIV)
            for i in range((MAX_SMALL_SIZE - SMALL_SIZE_MAX) // LARGE_SIZE_DIV + 1)]
    # Cross-check the lookup the C code does (rt__size_to_class_inline).
    for req in range(1, MAX_SMALL_SIZE - 8 + 1):
        if req <= SMALL_SIZE_MAX - 8:
            cls = t8[(req + SMALL_SIZE_DIV - 1) // SMALL_SIZE_DIV]
        else:
            cls = t128[(req - SMALL_SIZE_MAX + LARGE_SIZE_DIV - 1) // LARGE_SIZE_DIV]
        if cls != smallest_class(classes, req):
            raise SystemExit("mksizeclasses: lookup of %d bytes gives class %d" % (req, cls))
    return t8, t128


def c_array(ctype, name, dim, values, per_line, fmt="%d"):
    out = ["static const %s %s[%s] __attribute__((unused)) = {" % (ctype, name, dim)]
    for i in range(0, len(values), per_line):
        chunk = values[i:i + per_line]
        out.append("    " + ", ".join(fmt % v for v in chunk) + ",")
    out.append("};")
    return out


def render(classes, magics, t8, t128):
    L = []
    L.append("/* rtgc/sizeclasses.h -- allocator size classes.  GENERATED FILE, DO NOT EDIT.")
    L.append(" *")
    L.append(" * Generated by: python3 tools/mksizeclasses.py > include/rtgc/sizeclasses.h")
    L.append(" * Edit the generator and regenerate; the output is checked in.")
    L.append(" *")
    L.append(" * These are Go's size classes (identical in Go 1.19 through 1.25),")
    L.append(" * re-derived from the rules of Go's mksizeclasses (see the generator):")
    L.append(" * candidate sizes step by 8/16/size-8ths/256, each candidate gets the fewest")
    L.append(" * 8 KiB pages with tail waste <= 1/8 of the span, candidates with equal pages")
    L.append(" * and equal object counts merge, and each class is then widened to the")
    L.append(" * largest multiple of 128 that still fits the same number of objects in the")
    L.append(" * same pages.  Because of that widening, npages is NOT always the fewest")
    L.append(" * pages for the final size (e.g. 14336 B: 7 pages): never recompute it.")
    L.append(" *")
    L.append(" * rt__class_to_divmagic[c] = floor((2^32 - 1) / size) + 1; for every byte")
    L.append(" * offset n in [0, npages * 8192] (checked exhaustively by the generator):")
    L.append(" *     n / size == (uint32_t)(((uint64_t)n * divmagic) >> 32)")
    L.append(" *")
    L.append(" * Size -> class for 1 <= size <= RT_MAX_SMALL_ALLOC:")
    L.append(" *     size <= RT_SMALL_SIZE_MAX - 8")
    L.append(" *         ? rt__size_to_class8[(size + 7) / 8]")
    L.append(" *         : rt__size_to_class128[(size - RT_SMALL_SIZE_MAX + 127) / 128]")
    L.append(" *")
    L.append(" * class  bytes/obj  pages  objects  tail waste")
    for i in range(1, len(classes)):
        size, npages = classes[i]
        span = npages * PAGE_SIZE
        L.append(" * %5d  %9d  %5d  %7d  %10d" % (i, size, npages, span // size, span % size))
    L.append(" */")
    L.append("#ifndef RTGC_SIZECLASSES_H")
    L.append("#define RTGC_SIZECLASSES_H")
    L.append("")
    L.append("#include <stdint.h>")
    L.append("")
    L.append("#define RT_PAGE_SHIFT %d" % PAGE_SHIFT)
    L.append("#define RT_PAGE_SIZE %d" % PAGE_SIZE)
    L.append("#define RT_NUM_SIZE_CLASSES %d" % NUM_SIZE_CLASSES)
    L.append("#define RT_MAX_SMALL_SIZE %d" % MAX_SMALL_SIZE)
    L.append("#define RT_SMALL_SIZE_DIV %d" % SMALL_SIZE_DIV)
    L.append("#define RT_SMALL_SIZE_MAX %d" % SMALL_SIZE_MAX)
    L.append("#define RT_LARGE_SIZE_DIV %d" % LARGE_SIZE_DIV)
    L.append("#define RT_TINY_SIZE %d" % TINY_SIZE)
    L.append("#define RT_TINY_SIZE_CLASS %d" % smallest_class(classes, TINY_SIZE))
    L.append("/* Largest request served by a size class; anything bigger is a large")
    L.append("   object with its own span (Go 1.22+: 32761..32768 B are large too). */")
    L.append("#define RT_MAX_SMALL_ALLOC (%d - 8)" % MAX_SMALL_SIZE)
    L.append("")
    L.append("/* Object size of each class; class 0 is reserved for large objects. */")
    L += c_array("uint16_t", "rt__class_to_size", "RT_NUM_SIZE_CLASSES",
                 [c[0] for c in classes], 10, "%5d")
    L.append("")
    L.append("/* Pages (of RT_PAGE_SIZE) in one span of each class. */")
    L += c_array("uint8_t", "rt__class_to_npages", "RT_NUM_SIZE_CLASSES",
                 [c[1] for c in classes], 17, "%2d")
    L.append("")
    L.append("/* Division magic: offset / size == (offset * magic) >> 32 within a span. */")
    L += c_array("uint32_t", "rt__class_to_divmagic", "RT_NUM_SIZE_CLASSES",
                 magics, 6, "0x%08xu")
    L.append("")
    L.append("/* Entry i: smallest class with size >= i * 8 (entry 0 is class 0). */")
    L += c_array("uint8_t", "rt__size_to_class8",
                 "RT_SMALL_SIZE_MAX / RT_SMALL_SIZE_DIV + 1", t8, 16, "%2d")
    L.append("")
    L.append("/* Entry i: smallest class with size >= 1024 + i * 128. */")
    L += c_array("uint8_t", "rt__size_to_class128",
                 "(RT_MAX_SMALL_SIZE - RT_SMALL_SIZE_MAX) / RT_LARGE_SIZE_DIV + 1",
                 t128, 16, "%2d")
    L.append("")
    L.append("#endif /* RTGC_SIZECLASSES_H */")
    return "\n".join(L) + "\n"


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        sys.stderr.write("usage: %s [output.h]\n" % argv[0])
        return 2
    classes = make_classes()
    check(classes)
    magics = [div_magic(size, npages) for size, npages in classes]
    t8, t128 = lookup_tables(classes)
    text = render(classes, magics, t8, t128)
    if len(argv) == 2:
        with open(argv[1], "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
