require "extlists";
redirect :list "tag:example.com,2010-05-28:mylist";
