import io

from gitpaas.output import StreamOutput


def test_lines_reach_the_stream_with_their_prefixes():
    stream = io.StringIO()
    out = StreamOutput(stream)
    out.stage("Building")
    out.info("one\ntwo")
    out.warn("bad")
    assert stream.getvalue() == "-----> Building\n       one\n       two\n !     bad\n"


def test_control_characters_are_replaced_but_colours_and_tabs_pass():
    # git's side band drops the rest of a packet after a NUL: a build printing NULs once swallowed the
    # failure line that followed it
    stream = io.StringIO()
    StreamOutput(stream).info("a\x00b\x07c\x08d\x7fe\tf\x1b[1mg\x1b[0m")
    assert stream.getvalue() == "       a\ufffdb\ufffdc\ufffdd\ufffde\tf\x1b[1mg\x1b[0m\n"
