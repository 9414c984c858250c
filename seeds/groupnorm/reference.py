import torch
import torch.nn as nn


class Model(nn.Module):
    """Group normalization of a (batch, features, *) tensor (nn.GroupNorm, affine).

    The channels of each sample are split into num_groups consecutive groups; each group is
    normalised with the mean and biased variance of its channels * spatial elements, then scaled
    and shifted per channel by the learned weight and bias.
    """

    def __init__(self, num_features: int, num_groups: int):
        super().__init__()
        self.gn = nn.GroupNorm(num_groups=num_groups, num_channels=num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gn(x)


batch_size = 112
features = 64
num_groups = 8
dim1 = 512
dim2 = 512


def get_inputs():
    x = torch.rand(batch_size, features, dim1, dim2)
    return [x]


def get_init_inputs():
    return [features, num_groups]
