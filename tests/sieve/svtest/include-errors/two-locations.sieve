require "include";
include :personal :global "ns-personal";
