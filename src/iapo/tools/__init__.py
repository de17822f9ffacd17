"""Tools around the study, not part of it: the benchmark (`iapo bench`), its GEMM FLOP counts and
floors, and the GPU readiness check (`iapo gpu-check`). Nothing in training, the analyses or the
audit imports them."""
