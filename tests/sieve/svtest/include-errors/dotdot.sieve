require "include";
include "../included/ns-personal";
