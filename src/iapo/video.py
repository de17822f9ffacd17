"""Videos of evaluation episodes: MuJoCo's offscreen rendering and an imageio writer.

MuJoCo renders through OpenGL, with the backend that the environment variable MUJOCO_GL names:
`egl` (a GPU with its EGL driver, headless), `osmesa` (software, any machine with the OSMesa
library; Debian/Ubuntu: `apt-get install libosmesa6`) or `glfw` (a desktop session). Unset, the
first of them that can make a context here is chosen, each tried in a child process: a failed
attempt binds PyOpenGL to its platform for the rest of the process, so the next one could not be
tried in this one. Formats, by the file's suffix: `.mp4` (H.264 through imageio-ffmpeg, a small
file) and `.gif` (Pillow; about twenty times larger, for pages and slides). A video plays in real
time: at the task's frame rate (`render_fps`, one frame per env step), a GIF at every k-th step
(`gif_stride`), since GIF frame delays are whole centiseconds and browsers slow down delays under
20 ms.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from iapo import atomic
from iapo.errors import VideoError

if TYPE_CHECKING:
    import gymnasium as gym

GL_BACKENDS = ("egl", "osmesa", "glfw")
"""MuJoCo's OpenGL backends on Linux, in the order they are tried when MUJOCO_GL is unset."""

FORMATS = {".mp4": "H.264 video (imageio-ffmpeg)", ".gif": "animated GIF (Pillow)"}

RENDER_FIX = (
    "On a machine without a GPU install OSMesa (Debian/Ubuntu: apt-get install libosmesa6) and set "
    "MUJOCO_GL=osmesa; on a GPU machine MUJOCO_GL=egl needs the GPU's EGL driver (libegl1 and the "
    "NVIDIA driver); in a desktop session MUJOCO_GL=glfw. Or leave out --video."
)


def check_target(path: Path) -> None:
    """Refuse, before anything runs, a video file whose format is not supported or cannot be written."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        allowed = ", ".join(f"{s} ({what})" for s, what in FORMATS.items())
        raise VideoError(f"--video {path}: cannot tell the format from {suffix or 'no suffix'!r}; "
                         f"name the file with one of {allowed}.")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise VideoError(f"--video {path}: MP4 needs the package imageio-ffmpeg, which is not "
                             "installed (`make setup` installs it); or write a .gif.") from None
    if path.is_dir():
        raise VideoError(f"--video {path} is a folder; name a file, e.g. {path / 'episode.mp4'}.")


def _context_works(backend: str) -> bool:
    """Whether MuJoCo can make an OpenGL context with `backend`, tried in a child process."""
    code = f"from mujoco.{backend} import GLContext; c = GLContext(16, 16); c.make_current(); c.free()"
    env = {k: v for k, v in os.environ.items() if k != "PYOPENGL_PLATFORM"} | {"MUJOCO_GL": backend}
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def choose_gl_backend() -> str:
    """MUJOCO_GL if set; else the first of `GL_BACKENDS` that makes a context here, which is then
    set in this process's environment (gymnasium reads it when it first renders)."""
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        return chosen
    for backend in GL_BACKENDS:
        if _context_works(backend):
            os.environ["MUJOCO_GL"] = backend
            return backend
    raise VideoError(f"cannot render a video: MuJoCo could make an OpenGL context with none of "
                     f"{', '.join(GL_BACKENDS)} (MUJOCO_GL is unset, each was tried). {RENDER_FIX}")


def gif_stride(fps: float) -> int:
    """Every k-th frame in a GIF: the smallest k whose delay k/fps is at least 20 ms and a whole
    number of centiseconds (to 0.5 ms), else the smallest k of at least 20 ms. Hopper, 125 fps: 5
    (40 ms); Humanoid, 67 fps: 2; InvertedPendulum, 25 fps: 1."""
    delays = [(k, 1000.0 * k / fps) for k in range(1, 101)]
    fits = [k for k, ms in delays if ms >= 19.5 and abs(ms - 10 * round(ms / 10)) <= 0.5]
    return fits[0] if fits else next(k for k, ms in delays if ms >= 20.0)


def _describe(err: BaseException) -> str:
    try:
        text = str(err)
    except Exception:  # some OpenGL errors cannot print themselves
        text = ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class VideoRecorder:
    """Frames of one episode, each appended to the video file as it is rendered (a long episode is
    never held in memory); the file appears, complete, only when the recorder closes without an
    error (written to a temporary file next to it, then renamed); after an error nothing is left."""

    def __init__(self, path: str | Path, size: int = 480) -> None:
        self.path, self.size = Path(path), size
        self.frames = 0   # written
        self._calls = 0   # `capture` calls: one per env step (and the reset)
        self._stride = 1
        self._file = contextlib.ExitStack()  # the temporary file (`iapo.atomic`), open until `__exit__`
        self._tmp = self._file.enter_context(atomic.replacing(self.path, keep_suffix=True))
        self._writer = None

    def capture(self, env: gym.Env) -> None:
        """Render `env` (built with `render_size`) now and append the frame (a GIF: every k-th)."""
        if self._writer is None:
            self._writer = self._open(env)
        self._calls += 1
        if (self._calls - 1) % self._stride:
            return
        try:
            frame = env.render()
        except Exception as err:  # the OpenGL backends fail in many ways (EGLError, FatalError, …)
            raise VideoError(f"cannot render a video: MuJoCo's offscreen rendering failed with "
                             f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '(unset)')} ({_describe(err)}). "
                             f"{RENDER_FIX}") from err
        self._writer.append_data(np.asarray(frame))
        self.frames += 1

    def _open(self, env: gym.Env):
        import imageio

        fps = float(env.metadata.get("render_fps") or 30)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.suffix.lower() == ".gif":
            self._stride = gif_stride(fps)
            return imageio.get_writer(self._tmp, mode="I", duration=1000.0 * self._stride / fps, loop=0)
        return imageio.get_writer(self._tmp, fps=fps)

    def __enter__(self) -> VideoRecorder:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if kind is None and not self.frames:
                raise VideoError(f"--video {self.path}: the episode rendered no frame")
        except BaseException as failure:  # the temporary file goes, nothing is renamed
            self._file.__exit__(type(failure), failure, failure.__traceback__)
            raise
        self._file.__exit__(kind, err, tb)  # renamed over the path if the episode ended well
