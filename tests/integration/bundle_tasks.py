"""Tasks for test_bundle.py: objects the function, the hooks and the shared objects share."""


class Actor:
    """MPIRE's benchmark idiom: tasks add documents, worker_exit reports what was added."""

    def __init__(self):
        self.docs = []

    def add_document(self, doc):
        self.docs.append(doc)
        return len(doc)

    def get_popular(self):
        return sorted(self.docs)


class Counter:
    def __init__(self):
        self.n = 0

    def count(self, shared, x):
        self.n += 1
        return shared["scale"] * x

    def seen(self, shared):
        return self.n


def same_object(named, shared, x):
    """Called as partial(same_object, d)(shared, x): is the partial's d the shared object?"""
    return named is shared
