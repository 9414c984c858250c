import torch
import torch.nn as nn


class Model(nn.Module):
    """2D batch normalization of a (batch, features, height, width) tensor (nn.BatchNorm2d).

    In training mode (the default) each channel is normalised with the mean and biased variance
    of its batch * height * width elements, and the running statistics are updated as a side
    effect (momentum 0.1, unbiased variance); in eval mode the running statistics are used.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features=num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x)


batch_size = 64
features = 64
dim1 = 512
dim2 = 512


def get_inputs():
    x = torch.rand(batch_size, features, dim1, dim2)
    return [x]


def get_init_inputs():
    return [features]
