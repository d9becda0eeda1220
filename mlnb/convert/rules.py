"""What the converter knows about common libraries (data, not logic).

Kept in one place so a user report ("``df.foo()`` mutates but you missed it") is a
one-line fix here.
"""

from __future__ import annotations

# Pseudo-variables for the global random number generators: a step that draws from a
# seeded global RNG hands the RNG state to the next step that draws, like any value.
NP_RNG = "__np_random__"
PY_RNG = "__py_random__"
RNG_CONSUMERS = {
    # numpy.random / random attributes that do not touch the global state
    "constructors": frozenset({"default_rng", "RandomState", "Generator", "SeedSequence", "PCG64", "MT19937",
                               "Philox", "SFC64", "BitGenerator", "Random", "SystemRandom", "get_state",
                               "getstate"}),
    # methods that draw from numpy's global RNG when no random_state is given
    "methods": frozenset({"fit", "fit_transform", "fit_predict", "fit_resample", "sample", "shuffle",
                          "partial_fit"}),
}

# Method names that never change their receiver (pandas, numpy, scikit-learn, str, dict, ...).
# Any other method called on a notebook value is assumed to mutate it (``lst.append``,
# ``model.fit``): over-approximating costs a hand-off, under-approximating a wrong result.
PURE_METHODS = frozenset("""
    head tail describe info copy sum mean median mode std var sem min max count nunique unique value_counts
    isnull isna notnull notna corr cov groupby agg aggregate apply applymap map transform merge join
    drop dropna fillna sort_values sort_index reset_index set_index rename astype query eval round abs
    any all argmax argmin idxmax idxmin nlargest nsmallest select_dtypes memory_usage pivot pivot_table
    melt stack unstack cumsum cumprod diff pct_change shift rolling expanding ewm resample duplicated
    drop_duplicates equals isin between clip where mask filter assign pipe iterrows itertuples items keys
    values get to_csv to_parquet to_json to_dict to_list tolist to_numpy to_frame to_string to_markdown
    to_html to_excel to_pickle reshape ravel flatten transpose dot mean_squared_error plot hist boxplot
    bar barh scatter line area pie kde density predict predict_proba predict_log_proba decision_function
    score score_samples get_params get_feature_names_out inverse_transform format split rsplit strip
    lstrip rstrip lower upper title capitalize replace startswith endswith find rfind index rindex
    encode decode splitlines isdigit isalpha isalnum zfill center ljust rjust partition rpartition
    casefold swapcase translate expandtabs isupper islower isspace istitle isnumeric isdecimal
    issubset issuperset isdisjoint union intersection difference symmetric_difference
    nonzero argsort searchsorted compress take repeat squeeze astype view item itemset_ tobytes
    cummax cummin prod product quantile rank explode crosstab interpolate first last nth ohlc
    sample describe_option get_loc get_indexer droplevel swaplevel reindex reindex_like align combine
    combine_first add sub mul div truediv floordiv mod pow radd rsub rmul rdiv dot_ lt gt le ge eq ne
    str dt cat sparse style format_map show savefig get_xlim get_ylim get_figure get_legend
    __len__ __getitem__ __contains__ __iter__ conjugate real imag
""".split())

# Library functions that change an argument in place: qualified name -> argument position.
MUTATING_FUNCTIONS = {
    "random.shuffle": 0, "numpy.random.shuffle": 0, "numpy.fill_diagonal": 0, "numpy.copyto": 0,
    "numpy.put": 0, "numpy.place": 0, "numpy.putmask": 0, "heapq.heappush": 0, "heapq.heappop": 0,
    "heapq.heapify": 0, "heapq.heappushpop": 0, "heapq.heapreplace": 0, "bisect.insort": 0,
    "bisect.insort_left": 0, "bisect.insort_right": 0,
}

# Session set-up calls every later step replicates (matched on the qualified name's tail).
CONFIG_CALLS = (
    "set_option", "set_printoptions", "set_theme", "set_style", "set_context", "set_palette",
    "seaborn.set", "style.use", "filterwarnings", "simplefilter", "matplotlib.rc", "pyplot.rc",
    "rcParams.update", "sklearn.set_config", "set_config", "use_inf_as_na",
    "os.chdir", "sys.path.append", "sys.path.insert", "os.environ.update", "os.environ.setdefault",
)
# Attribute/item assignments on these module paths are session set-up too.
CONFIG_TARGETS = ("rcParams", "pandas.options", ".options.display", "options.mode", "os.environ")

_UNSERIALISABLE = {
    "open": "an open file", "io.open": "an open file", "gzip.open": "an open file", "bz2.open": "an open file",
    "lzma.open": "an open file", "codecs.open": "an open file", "tempfile.TemporaryFile": "an open file",
    "tempfile.NamedTemporaryFile": "an open file", "tempfile.SpooledTemporaryFile": "an open file",
    "importlib.import_module": "a module", "__import__": "a module",
    "sqlite3.connect": "a database connection", "socket.socket": "a socket",
    "socket.create_connection": "a socket", "os.scandir": "an open directory iterator",
}
_LOCKS = ("Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier")


def unserialisable_call(qualname: str) -> str:
    """Why the result of calling ``qualname`` cannot be pickled ('' when it probably can)."""
    if qualname in _UNSERIALISABLE:
        return _UNSERIALISABLE[qualname]
    module, _, last = qualname.rpartition(".")
    if last in _LOCKS and module.split(".")[0] in ("threading", "multiprocessing", "asyncio"):
        return "a lock"
    return ""
