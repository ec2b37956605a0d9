require "include";
include "ns	personal";
