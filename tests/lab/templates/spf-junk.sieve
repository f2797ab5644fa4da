# The fleet lab's receiver policy: a message whose sender's SPF does not name the client's
# IP is accepted and filed into Junk (as Microsoft 365 does with Direct Send from an IP the
# domain's SPF leaves out), not rejected.
require ["fileinto"];
if anyof (header :contains "Authentication-Results" ["spf=fail", "spf=softfail"],
          header :matches "Received-SPF" ["Fail*", "Softfail*"]) {
  fileinto "Junk";
  stop;
}
