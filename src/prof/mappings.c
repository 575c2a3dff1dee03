/*
 * mappings.c - the loaded objects of this process, for profile.proto's
 * Mapping table (docs/formats.md §5).
 *
 * Owns: reading, with dl_iterate_phdr, each object's executable PT_LOAD
 * segments as the page-aligned ranges /proc/self/maps shows (start, limit,
 * file offset of start), its file name (the main executable's from
 * /proc/self/exe, the vDSO as "[vdso]") and its GNU build ID, found in the
 * object's PT_NOTE segments in memory (NT_GNU_BUILD_ID, owner "GNU"), as
 * lowercase hex. pprof uses the range and offset to turn an address into a
 * file address and the name or build ID to find the binary when it
 * symbolizes what goro could not.
 *
 * Invariants: the main executable comes first (pprof treats mapping[0] as
 * the main binary); ranges never overlap (each comes from one segment of
 * one object); every note read is bounds-checked against its segment, so a
 * malformed note ends the search instead of reading past it.
 *
 * Locking: none of our own. dl_iterate_phdr holds the loader's lock while
 * it calls us, so objects cannot be unloaded under the callback; the result
 * is a snapshot (an object dlclose'd afterwards keeps its stale entry).
 */
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "prof/prof_internal.h"

typedef struct load_ctx {
    goro__mappings *m;
    int err;
    uintptr_t main_phdr; /* AT_PHDR: the main executable's program headers */
    uintptr_t vdso;      /* AT_SYSINFO_EHDR: the vDSO's load address */
    const char *exe;     /* /proc/self/exe target, or NULL */
    size_t page;
} load_ctx;

/* Copy s into m->names; returns its offset or SIZE_MAX when out of memory. */
static size_t add_name(goro__mappings *m, const char *s, size_t len)
{
    if (m->names_cap - m->names_n < len + 1) {
        size_t ncap = m->names_cap ? m->names_cap : 1024;
        while (ncap - m->names_n < len + 1) {
            if (ncap > SIZE_MAX / 2)
                return SIZE_MAX;
            ncap *= 2;
        }
        char *nn = realloc(m->names, ncap);
        if (!nn)
            return SIZE_MAX;
        m->names = nn;
        m->names_cap = ncap;
    }
    size_t off = m->names_n;
    memcpy(m->names + off, s, len);
    m->names[off + len] = '\0';
    m->names_n += len + 1;
    return off;
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }

/* The GNU build ID of an object from its PT_NOTE segments, or 0 bytes. */
static size_t find_build_id(const struct dl_phdr_info *info, const unsigned char **out)
{
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
        size_t sz = ph->p_filesz < ph->p_memsz ? ph->p_filesz : ph->p_memsz;
        size_t align = ph->p_align == 8 ? 8 : 4;
        size_t off = 0;
        while (sz - off >= sizeof(ElfW(Nhdr))) {
            ElfW(Nhdr) nh;
            memcpy(&nh, p + off, sizeof nh);
            off += sizeof nh;
            size_t namesz = align_up(nh.n_namesz, align);
            size_t descsz = align_up(nh.n_descsz, align);
            if (namesz > sz - off)
                break;
            const unsigned char *name = p + off;
            off += namesz;
            if (nh.n_descsz > sz - off)
                break;
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
                nh.n_descsz > 0) {
                *out = p + off;
                return nh.n_descsz;
            }
            if (descsz > sz - off)
                break;
            off += descsz;
        }
    }
    return 0;
}

static int add_mapping(goro__mappings *m, const goro__mapping *src)
{
    if (m->n == m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 32;
        goro__mapping *nv = realloc(m->v, ncap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        m->v = nv;
        m->cap = ncap;
    }
    m->v[m->n++] = *src;
    return 0;
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    load_ctx *c = data;
    goro__mappings *m = c->m;
    bool is_main = (uintptr_t)info->dlpi_phdr == c->main_phdr;
    bool is_vdso = c->vdso && info->dlpi_addr == c->vdso;

    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (is_main && c->exe)
        name = c->exe;
    else if (is_vdso)
        name = "[vdso]";

    size_t name_off = SIZE_MAX, bid_off = SIZE_MAX;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || ph->p_memsz == 0)
            continue;
        if (name_off == SIZE_MAX) {
            name_off = add_name(m, name, strlen(name));
            const unsigned char *id = NULL;
            size_t idlen = find_build_id(info, &id);
            char hex[2 * 64 + 1];
            if (idlen > 64)
                idlen = 64; /* GNU build IDs are 8..20 bytes; 64 is far beyond */
            for (size_t k = 0; k < idlen; k++) {
                hex[2 * k] = "0123456789abcdef"[id[k] >> 4];
                hex[2 * k + 1] = "0123456789abcdef"[id[k] & 15];
            }
            bid_off = add_name(m, hex, 2 * idlen);
            if (name_off == SIZE_MAX || bid_off == SIZE_MAX) {
                c->err = -ENOMEM;
                return 1;
            }
        }
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        uintptr_t end = start + ph->p_memsz;
        goro__mapping mp = {0};
        mp.start = start & ~(uintptr_t)(c->page - 1);
        mp.limit = (end + c->page - 1) & ~(uintptr_t)(c->page - 1);
        uintptr_t delta = start - mp.start;
        mp.offset = ph->p_offset >= delta ? ph->p_offset - delta : 0;
        mp.is_main = is_main;
        mp.file_off = name_off;
        mp.bid_off = bid_off;
        int rc = add_mapping(m, &mp);
        if (rc) {
            c->err = rc;
            return 1;
        }
    }
    return 0;
}

int goro__mappings_load(goro__mappings *m)
{
    if (!m)
        return -EINVAL;
    memset(m, 0, sizeof *m);
    char *exe = malloc(PATH_MAX + 1);
    if (!exe)
        return -ENOMEM;
    ssize_t n = readlink("/proc/self/exe", exe, PATH_MAX);
    load_ctx c = {
        .m = m,
        .main_phdr = (uintptr_t)getauxval(AT_PHDR),
        .vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR),
        .exe = NULL,
    };
    if (n > 0) {
        exe[n] = '\0';
        c.exe = exe;
    }
    long pg = sysconf(_SC_PAGESIZE);
    c.page = pg > 0 ? (size_t)pg : 4096;
    dl_iterate_phdr(phdr_cb, &c);
    free(exe);
    if (c.err) {
        goro__mappings_free(m);
        return c.err;
    }
    /* Main executable first (stable: its own segments keep their order). */
    size_t w = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].is_main) {
            goro__mapping t = m->v[i];
            memmove(&m->v[w + 1], &m->v[w], (i - w) * sizeof t);
            m->v[w++] = t;
        }
    for (size_t i = 0; i < m->n; i++) {
        m->v[i].file = m->names + m->v[i].file_off;
        m->v[i].build_id = m->names + m->v[i].bid_off;
    }
    if (m->n) {
        m->by_start = malloc(m->n * sizeof *m->by_start);
        if (!m->by_start) {
            goro__mappings_free(m);
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->n; i++)
            m->by_start[i] = (uint32_t)i;
        /* Insertion sort: a process has tens of objects, not thousands. */
        for (size_t i = 1; i < m->n; i++) {
            uint32_t x = m->by_start[i];
            size_t j = i;
            while (j > 0 && m->v[m->by_start[j - 1]].start > m->v[x].start) {
                m->by_start[j] = m->by_start[j - 1];
                j--;
            }
            m->by_start[j] = x;
        }
    }
    return 0;
}

void goro__mappings_free(goro__mappings *m)
{
    if (!m)
        return;
    free(m->v);
    free(m->by_start);
    free(m->names);
    memset(m, 0, sizeof *m);
}

long goro__mappings_find(const goro__mappings *m, uintptr_t addr)
{
    if (!m || !m->n)
        return -1;
    size_t lo = 0, hi = m->n; /* first index whose start > addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[m->by_start[mid]].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const goro__mapping *mp = &m->v[m->by_start[lo - 1]];
    return addr < mp->limit ? (long)m->by_start[lo - 1] : -1;
}
