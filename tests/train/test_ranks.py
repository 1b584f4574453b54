"""Ranks: one process is a job of one rank, and the description that refuses ranks with other data.
(Several ranks are tested under mpiexec in tests/distributed.)"""

import numpy as np
import pytest

from minicnn.data import ArrayDataset
from minicnn.distributed import SingleProcess
from minicnn.train.ranks import Ranks, data_description


@pytest.mark.parametrize("communicator", [None, SingleProcess()])
def test_one_process_is_the_lead_of_a_job_of_one_and_does_each_step_itself(communicator):
    ranks = Ranks(communicator)
    assert (ranks.communicator, ranks.lead, ranks.part) == (None, True, (0, 1))
    assert ranks.together(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(KeyError):  # the step's own error, as it is
        ranks.together(lambda: {}["missing"])
    assert ranks.from_lead([1, 2]) == [1, 2]
    ranks.same("settings", {"lr": 0.1})
    calls = object(), object(), print
    assert ranks.reporters(*calls) == calls


def dataset(labels):
    return ArrayDataset(np.zeros((len(labels), 1, 2, 2), np.uint8), np.asarray(labels), ["a", "b", "c"])


def test_the_data_description_tells_other_labels_another_order_or_size_apart():
    same = data_description(dataset([0, 1, 2, 1]), dataset([2, 0]))
    assert same == data_description(dataset([0, 1, 2, 1]), dataset([2, 0]))
    for other in (data_description(dataset([1, 0, 2, 1]), dataset([2, 0])),   # another order
                  data_description(dataset([0, 1, 2, 1, 0]), dataset([2, 0])),  # another size
                  data_description(dataset([0, 1, 2, 1]), dataset([2, 1]))):    # another test set
        assert other != same
    assert "test images" not in data_description(dataset([0]), None)
