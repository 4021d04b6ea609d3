# A small analysis program for `rlm exec` (make demo runs it over examples/sample_context).
# It explores the read-only context the way model-written code does, through the context API,
# then ends with FINAL(...).
import collections

print(repr(context))  # the shape: file count, bytes, types; never the content

levels = collections.Counter()
problems = collections.Counter()
for path in list_files(glob="*.log"):
    for line in read_file(path).splitlines():
        _ts, level, service, message = line.split(maxsplit=3)
        levels[level] += 1
        if level != "INFO":
            problems[(service.rstrip(":"), message.strip())] += 1

print("lines by level:", dict(levels))
print("most frequent problems:")
for (service, message), count in problems.most_common(3):
    print(f"  {count:4}  {service:8} {message}")

(service, message), count = problems.most_common(1)[0]
advice = grep(message.split()[0], glob="docs/runbook.md")
print("runbook:", advice[0]["line"] if advice else "(nothing)")
FINAL(f"the most frequent problem is '{message}' in {service} ({count} times)")
