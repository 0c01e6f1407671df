// colora::nn — small networks with CoLoRA adapters, trained collaboratively
// on CPU (docs/nn.md). The area umbrella.
#pragma once

#include "colora/nn/param.hpp"
#include "colora/nn/adapter.hpp"
#include "colora/nn/layers.hpp"
#include "colora/nn/attention.hpp"
#include "colora/nn/transformer.hpp"
#include "colora/nn/loss.hpp"
#include "colora/nn/models.hpp"
#include "colora/nn/optim.hpp"
#include "colora/nn/trainer_options.hpp"
#include "colora/nn/checkpoint.hpp"
#include "colora/nn/training_policy.hpp"
#include "colora/nn/trainer.hpp"
#include "colora/nn/selection.hpp"
#include "colora/nn/peft.hpp"
