"""Product Ops Workbench: repeatable product-ops readouts from parameterized notebooks."""

__version__ = "0.1.0"

from workbench import charts  # noqa: E402  (registers the Altair theme)
from workbench.cohort_readout import CohortExplorer, CohortReadout, cohort_readout  # noqa: E402
from workbench.errors import (  # noqa: E402
    DataContractError,
    ExportError,
    ParameterError,
    SourceError,
    WorkbenchError,
)
from workbench.experiment import ExperimentReadout, decide, experiment_readout  # noqa: E402
from workbench.interactive import explore  # noqa: E402
from workbench.notebook import NotebookRun  # noqa: E402
from workbench.overview import data_overview, event_trend  # noqa: E402
from workbench.readout import Heading, Readout, Table  # noqa: E402
from workbench.results import AnalysisResult, Check, KeyNumber  # noqa: E402
from workbench.themes import FeedbackThemes, feedback_theming  # noqa: E402

__all__ = [
    "AnalysisResult",
    "Check",
    "CohortExplorer",
    "CohortReadout",
    "DataContractError",
    "ExperimentReadout",
    "ExportError",
    "FeedbackThemes",
    "Heading",
    "KeyNumber",
    "NotebookRun",
    "ParameterError",
    "Readout",
    "SourceError",
    "Table",
    "WorkbenchError",
    "charts",
    "cohort_readout",
    "data_overview",
    "decide",
    "event_trend",
    "experiment_readout",
    "explore",
    "feedback_theming",
]
