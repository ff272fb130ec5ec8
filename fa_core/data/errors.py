"""Exception type for every dataset failure a user can run into."""


class DatasetError(Exception):
    """A dataset could not be fetched, converted, verified or loaded.

    The message always says what went wrong and what the user can do about it;
    the underlying exception, if any, is chained as ``__cause__``.
    """
