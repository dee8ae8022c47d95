from jaxcnn import malloc

malloc.retain_freed_memory()  # before the imports below allocate: see jaxcnn.malloc

from jaxcnn.bench.cli import main  # noqa: E402

main()
