"""What the peers share: which BLAS the process runs on."""
import ctypes
import re


def blas_info():
    """The BLAS this process loaded (from /proc/self/maps) and, for OpenBLAS, its core and threads."""
    libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if re.search(r"blas|mkl", l.split()[-1])})
    out = {"libraries": libs}
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = lib.openblas_get_config.restype = ctypes.c_char_p
            out.update(name="openblas", core=lib.openblas_get_corename().decode(),
                       config=lib.openblas_get_config().decode(), threads=lib.openblas_get_num_threads())
            break
        except (OSError, AttributeError):
            continue
    out.setdefault("name", "mkl" if any("mkl" in l for l in libs) else "reference or unknown")
    return out
