require "include";
include :global "sub/ns-global";
