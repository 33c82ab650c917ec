"""``python -m inferml_course {book, student, sync, runtimes}``: course tooling (see :mod:`.course`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import course


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inferml_course", description="Course tooling.")
    sub = parser.add_subparsers(dest="command", required=True)
    book = sub.add_parser("book", help="execute the lessons and render a static HTML site")
    book.add_argument("--out", type=Path, default=Path("_book"))
    book.add_argument("--lessons", nargs="*", default=None, help="lesson numbers, e.g. 00 02 (default: all)")
    book.add_argument("--no-execute", action="store_true", help="render the stored notebooks as they are")
    book.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    student = sub.add_parser("student", help="write student versions (solutions replaced by placeholders)")
    student.add_argument("--out", type=Path, default=course.STUDENT_DIR)
    sync = sub.add_parser("sync", help="rewrite every lesson's Colab badge, setup block and slide metadata, "
                                       "and the student versions in student/")
    sync.add_argument("--lessons", nargs="*", default=None, help="lesson numbers, e.g. 03 07 (default: all)")
    runtimes = sub.add_parser("runtimes", help="execute every lesson and print its time")
    runtimes.add_argument("--lessons", nargs="*", default=None)
    args = parser.parse_args(argv)
    try:
        if getattr(args, "lessons", None) is not None:
            course.select_lessons(args.lessons)
    except ValueError as err:
        parser.error(str(err))  # exit status 2 with the message, before any lesson runs

    if args.command == "book":
        index = course.build_book(args.out, args.lessons, execute=not args.no_execute, timeout=args.timeout)
        print(f"open {index}")
    elif args.command == "student":
        for path in course.write_student_versions(args.out):
            print(f"wrote {path}")
    elif args.command == "sync":
        for path in course.select_lessons(args.lessons):
            print(f"{'updated' if course.sync_notebook(path) else 'unchanged'} {path.name}")
        course.write_student_versions(lessons=args.lessons)
        print(f"student versions in {course.STUDENT_DIR}")
    elif args.command == "runtimes":
        course.print_runtimes(args.lessons, out=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
